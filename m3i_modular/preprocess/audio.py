"""`preprocess.py audio`: audio clips with captions -> tar shards (`<key>.wav` + `.txt` + `.cls` + `.json`).

Inputs (one of):
  --folder DIR          audio files (wav/flac/ogg, searched recursively); a caption is the text of a file
                        beside the clip with the same stem and a .txt suffix (optional)
  --synthetic N         N clips of the embedded `synthetic_audio` source (--split, --seed): the audio-caption
                        data of models/speech_text.json, as shards

Clips are written as 16-bit PCM WAV, resampled to --sample-rate when given. Unreadable or empty inputs are
skipped and listed in the manifest. The output directory is built under a temporary name and renamed.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import ConfigError, DataError
from ..runtime.atomic import atomic_dir, atomic_write_text
from ..data.audio import AUDIO_EXTS, Audio, decode_audio, encode_wav
from .tar_writer import ShardWriter

MANIFEST_VERSION = 1

Item = Tuple[Dict[str, object], Optional[Audio], Optional[str], Optional[int], Optional[str]]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("audio", help="audio clips + captions -> tar shards",
                              description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", metavar="DIR", help="audio files with optional same-stem .txt captions")
    src.add_argument("--synthetic", type=int, metavar="N", help="N clips of the embedded synthetic_audio source")
    p.add_argument("--output", required=True, metavar="DIR", help="directory to create")
    p.add_argument("--split", default="train", help="--synthetic: train, val or test")
    p.add_argument("--seed", type=int, default=0, help="--synthetic: the source's seed")
    p.add_argument("--sample-rate", type=int, default=0, metavar="HZ", help="resample to HZ; 0 keeps each rate")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(run=run)


def run(args) -> None:
    if args.shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1, got {args.shard_size}")
    if args.synthetic is not None:
        items = synthetic_items(args.synthetic, split=args.split, seed=args.seed)
    else:
        items = folder_items(args.folder)
    manifest = write_audio_shards(items, args.output, sample_rate=args.sample_rate, shard_size=args.shard_size,
                                  overwrite=args.overwrite)
    print(f"wrote {manifest['samples']} clips in {len(manifest['shards'])} shard(s) to {args.output}"
          f" ({manifest['skipped_count']} unreadable input(s) skipped)")


def synthetic_items(n: int, *, split: str = "train", seed: int = 0) -> Iterator[Item]:
    from ..data.sources.synthetic_audio import SyntheticAudio
    if n < 1:
        raise ConfigError(f"--synthetic needs a positive clip count, got {n}")
    try:
        src = SyntheticAudio(num_samples=n, split=split, seed=seed)
    except ConfigError as e:
        raise ConfigError(f"--synthetic: {e}") from None
    for i in range(n):
        s = src[i]
        yield {"source": "synthetic_audio", "split": split, "seed": seed, "index": i}, s["audio"], \
            s["caption"], s["label"], None


def folder_items(folder: str) -> Iterator[Item]:
    if not os.path.isdir(folder):
        raise ConfigError(f"--folder '{folder}' is not a directory")
    paths = sorted(os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
                   if f.rsplit(".", 1)[-1].lower() in AUDIO_EXTS)
    if not paths:
        raise ConfigError(f"--folder '{folder}' holds no {'/'.join(AUDIO_EXTS)} files")
    for path in paths:
        origin = {"path": os.path.relpath(path, folder)}
        try:
            with open(path, "rb") as f:
                audio = decode_audio(f.read())
        except (OSError, DataError) as e:
            yield origin, None, None, None, str(e)
            continue
        caption = None
        txt = os.path.splitext(path)[0] + ".txt"
        if os.path.isfile(txt):
            with open(txt, encoding="utf-8", errors="replace") as f:
                caption = f.read().strip() or None
        yield origin, audio, caption, None, None


def write_audio_shards(items, output: str, *, sample_rate: int = 0, shard_size: int = 1000,
                       overwrite: bool = False) -> dict:
    """Write (origin, audio, caption, label, error) items into `output/000000.tar`, ... + manifest.json."""
    if sample_rate < 0:
        raise ConfigError(f"--sample-rate must be >= 0, got {sample_rate}")
    skipped: List[dict] = []
    captions = n = 0
    rates: Dict[str, int] = {}
    with atomic_dir(output, overwrite=overwrite) as tmp:
        with ShardWriter(os.path.join(tmp, "%06d.tar"), max_count=shard_size) as writer:
            for origin, audio, caption, label, error in items:
                if audio is None:
                    skipped.append({**origin, "error": error})
                    continue
                if sample_rate and audio.sample_rate != sample_rate:
                    import torchaudio.functional as AF
                    audio = Audio(waveform=AF.resample(audio.waveform, audio.sample_rate, sample_rate),
                                  sample_rate=sample_rate)
                sample: Dict[str, bytes] = {"wav": encode_wav(audio.waveform, audio.sample_rate)}
                if caption is not None:
                    sample["txt"] = caption.encode("utf-8")
                    captions += 1
                if label is not None:
                    sample["cls"] = str(label).encode()
                sample["json"] = json.dumps({**origin, "key": f"{n:09d}", "sample_rate": audio.sample_rate,
                                             "seconds": audio.waveform.numel() / audio.sample_rate}).encode()
                writer.write(f"{n:09d}", sample)
                rates[str(audio.sample_rate)] = rates.get(str(audio.sample_rate), 0) + 1
                n += 1
        if n == 0:
            first = skipped[0]["error"] if skipped else "no inputs"
            raise DataError(f"none of the {len(skipped)} input clips could be read; first error: {first}")
        manifest = {"version": MANIFEST_VERSION, "kind": "audio", "samples": n, "captions": captions,
                    "sample_rates": rates, "skipped_count": len(skipped), "skipped": skipped[:1000],
                    "shards": writer.shards}
        atomic_write_text(os.path.join(tmp, "manifest.json"), json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest
