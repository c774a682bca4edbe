"""`webdataset_shards`: a map-style source over tar shards (ours from `preprocess.py images`, or img2dataset's).

    {"type": "webdataset_shards", "weight": 0.8, "shards": "data/laion/{000000..000099}.tar"}

`shards` is a brace pattern, a glob, a directory (every *.tar in it), a manifest.json from `preprocess.py
images`, or several of these joined by "::". Item i is the i-th sample of the shards in the order given
(braces and globs sorted), so PretrainDataset's per-epoch permutation of positions is the shuffle: it is a
function of (seed, epoch), ranks and DataLoader workers split positions, and resume is exact.

Fields: the image from the first of jpg/jpeg/png/webp/bmp/tif/tiff/gif, the audio from wav/flac/ogg
(soundfile; `sample_rate` > 0 makes a clip at another rate a skipped sample); the label from `.cls` (an integer),
else the `.json`'s "label"; the caption from `.txt`, else the `.json`'s "caption". A sample that cannot be
read or decoded raises DataError; PretrainDataset then substitutes another sample and counts the skip. Images
are decoded by data/decode.py: value range kept (16-bit, float), EXIF orientation applied, and an image of
more than `max_image_pixels` pixels (default PIL's limit; 0: none) refused before decoding.
"""
from __future__ import annotations

import bisect
import glob
import json
import os
import re
from typing import Any, Dict, List, Optional

import numpy as np

from ...errors import DataError
from ...registry import DATASETS, config_error
from ..audio import AUDIO_EXTS, decode_audio
from ..decode import DEFAULT_MAX_PIXELS, check_max_pixels, decode_image
from .tar_index import ShardFiles, ShardIndex, truncation_error

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> List[str]:
    """'a{00..02}b{x,y}' -> a00bx a00by a01bx ... (zero padding kept, like bash and webdataset)."""
    m = _BRACE.search(pattern)
    if m is None:
        return [pattern]
    body = m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") else 0
        if int(hi) < int(lo):
            raise config_error(f"brace range '{{{body}}}' runs backwards", "shards")
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    head, tail = pattern[:m.start()], pattern[m.end():]
    return [x for o in options for x in expand_braces(head + o + tail)]


def resolve_shards(spec: str) -> List[str]:
    """Shard paths from a pattern / glob / directory / manifest, in a stable order; errors name the part."""
    paths: List[str] = []
    for part in spec.split("::"):
        part = part.strip()
        if not part:
            continue
        if part.endswith(".json") and os.path.isfile(part):
            paths += _from_manifest(part)
            continue
        if os.path.isdir(part):
            found = sorted(glob.glob(os.path.join(part, "*.tar")))
            if not found:
                raise config_error(f"directory '{part}' holds no .tar shards", "shards")
            paths += found
            continue
        for p in expand_braces(part):
            if glob.has_magic(p):
                found = sorted(glob.glob(p))
                if not found:
                    raise config_error(f"no file matches '{p}'", "shards")
                paths += found
            elif not os.path.isfile(p):
                raise config_error(f"shard '{p}' does not exist (from '{part}')", "shards")
            else:
                paths.append(p)
    if not paths:
        raise config_error(f"'{spec}' names no shards", "shards")
    return paths


def _from_manifest(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        files = [s["file"] for s in manifest["shards"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise config_error(f"'{path}' is not a shard manifest from preprocess.py images ({e})", "shards")
    base = os.path.dirname(path)
    return [os.path.join(base, f) for f in files]


@DATASETS.register("webdataset_shards")
class WebDatasetShards:
    """Raw samples {"key", "image", "audio", "label", "caption", "seg": None} read by seeking into indexed
    shards (a sample has an image, an audio clip, or both)."""

    def __init__(self, *, shards: str, use_labels: bool = True, use_captions: bool = True, sample_rate: int = 0,
                 allow_truncated: bool = False, max_image_pixels: int = DEFAULT_MAX_PIXELS):
        if not isinstance(shards, str) or not shards.strip():
            raise config_error("shards must be a pattern like 'data/{000000..000009}.tar', a directory or a "
                               "manifest.json", "shards")
        self.paths = resolve_shards(shards)
        self.use_labels, self.use_captions = use_labels, use_captions
        if sample_rate < 0:
            raise config_error(f"sample_rate must be >= 0 (0 accepts any rate), got {sample_rate}", "sample_rate")
        self.sample_rate = sample_rate
        try:
            self.max_pixels = check_max_pixels(max_image_pixels)
        except ValueError as e:
            raise config_error(str(e), "max_image_pixels") from None
        self.indexes: List[ShardIndex] = []
        self.without_image = 0  # samples dropped at indexing: no image and no audio member
        self.keys: List[List[str]] = []
        self.members: List[list] = []
        for path in self.paths:
            try:
                index = ShardIndex.load(path)
            except DataError as e:
                raise config_error(str(e), "shards") from None
            if index.truncated and not (allow_truncated or index.accepted):
                raise config_error(f"{truncation_error(index)} (or set allow_truncated)", "shards")
            keep = [i for i, m in enumerate(index.members) if any(e in m for e in IMAGE_EXTS + AUDIO_EXTS)]
            self.without_image += len(index) - len(keep)
            self.keys.append([index.keys[i] for i in keep])
            self.members.append([index.members[i] for i in keep])
            self.indexes.append(index)
        self.truncated = [p for p, ix in zip(self.paths, self.indexes) if ix.truncated]
        self.offsets = np.cumsum([0] + [len(k) for k in self.keys]).tolist()
        if self.offsets[-1] == 0:
            raise config_error(f"the {len(self.paths)} shard(s) of '{shards}' hold no image or audio samples", "shards")
        self.files = ShardFiles()

    def __len__(self) -> int:
        return self.offsets[-1]

    def _locate(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        s = bisect.bisect_right(self.offsets, index) - 1
        return s, index - self.offsets[s]

    def where(self, index: int) -> str:
        """The shard holding sample `index` (named in skip reports)."""
        return self.paths[self._locate(index)[0]]

    def key(self, index: int) -> str:
        s, i = self._locate(index)
        return self.keys[s][i]

    def labels(self) -> List[Optional[int]]:
        """Every sample's label read from its small `.cls` / `.json` member alone (no image is decoded), for
        class-stratified evaluation subsets; None where a sample has none or it cannot be read."""
        out: List[Optional[int]] = []
        for s, members in enumerate(self.members):
            for m in members:
                try:
                    out.append(self._label(s, m, self._json(s, m) if "cls" not in m else None)
                               if self.use_labels else None)
                except (DataError, OSError):
                    out.append(None)
        return out

    def _read(self, s: int, member) -> bytes:
        return self.files.read(self.paths[s], member[0], member[1])

    def __getitem__(self, index: int) -> Dict[str, Any]:
        s, i = self._locate(index)
        key, members = self.keys[s][i], self.members[s][i]
        try:
            ext = next((e for e in IMAGE_EXTS if e in members), None)
            image = None if ext is None else decode_image(self._read(s, members[ext]), self.max_pixels)
            ext = next((e for e in AUDIO_EXTS if e in members), None)
            audio = None if ext is None else decode_audio(self._read(s, members[ext]),
                                                          expected_rate=self.sample_rate)
            meta = self._json(s, members)
            label = self._label(s, members, meta) if self.use_labels else None
            caption = self._caption(s, members, meta) if self.use_captions else None
        except DataError as e:
            raise DataError(f"{self.paths[s]}: sample '{key}': {e}") from None
        return {"key": key, "image": image, "audio": audio, "label": label, "caption": caption, "seg": None}

    def _json(self, s: int, members) -> Optional[dict]:
        if "json" not in members:
            return None
        try:
            meta = json.loads(self._read(s, members["json"]).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise DataError(f"unreadable .json ({e})") from None
        return meta if isinstance(meta, dict) else None

    def _label(self, s: int, members, meta: Optional[dict]) -> Optional[int]:
        if "cls" in members:
            text = self._read(s, members["cls"]).decode("utf-8", "replace").strip()
            try:
                return int(text)
            except ValueError:
                raise DataError(f".cls holds '{text[:40]}', not an integer class") from None
        value = meta.get("label") if meta else None
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    def _caption(self, s: int, members, meta: Optional[dict]) -> Optional[str]:
        if "txt" in members:
            try:
                return self._read(s, members["txt"]).decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise DataError(f".txt is not UTF-8 ({e.reason})") from None
        value = meta.get("caption") if meta else None
        return value if isinstance(value, str) else None
