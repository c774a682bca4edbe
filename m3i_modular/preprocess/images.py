"""`preprocess.py images`: image folders and lists -> tar shards in the WebDataset layout, plus a manifest.

Inputs (one of):
  --folder DIR          ImageNet-style DIR/<class>/<image>; classes are the sorted folder names -> `.cls`
  --list FILE           image-text pairs: .tsv / .csv (header row, csv quoting) or .jsonl, columns
                        --image-col and --caption-col (and --label-col if any), each required once named;
                        image paths relative to the list's folder; a bad row (not UTF-8, wrong field count)
                        stops with file:line, or with --on-bad-row skip is left out and counted
  --images PATH...      unlabelled images: files, folders (searched recursively) or .txt lists of paths
  --index SHARD...      no conversion: write the `.idx.json` index beside existing shards (img2dataset's)

Each sample is `<key>.jpg` (+ `.cls` / `.txt`) + `.json` (its origin), keys numbered in input order, so the
output is the same whatever --workers is. Unreadable images are skipped and listed in the manifest.
The output directory is built under a temporary name and renamed at the end.
"""
from __future__ import annotations

import io
import itertools
import json
import os
from typing import Dict, List, Optional, Tuple

from ..data.decode import DEFAULT_MAX_PIXELS, check_max_pixels, decode_rgb
from ..errors import ConfigError, DataError
from ..runtime.atomic import atomic_dir, atomic_write_text
from .list_rows import ON_BAD_ROW, ListReader
from .tar_writer import ShardWriter, write_index

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MANIFEST_VERSION = 1

Job = Tuple[str, Optional[int], Optional[str], Dict[str, object]]  # (path, label, caption, origin)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("images", help="image folders / image-text lists -> tar shards",
                              description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", metavar="DIR", help="ImageNet-style class folders")
    src.add_argument("--list", metavar="FILE", help="image-text pairs (.tsv, .csv or .jsonl)")
    src.add_argument("--images", nargs="+", metavar="PATH", help="unlabelled images, folders or .txt lists")
    src.add_argument("--index", nargs="+", metavar="SHARD", help="only write indexes for existing shards")
    p.add_argument("--output", metavar="DIR", help="directory to create (not with --index)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="--index: index a truncated shard anyway; training skips the samples past the cut")
    p.add_argument("--image-col", default="image", help="--list: the column with the image path")
    p.add_argument("--caption-col", default="caption", help="--list: the column with the caption")
    p.add_argument("--label-col", default="", help="--list: an optional integer label column")
    p.add_argument("--on-bad-row", choices=ON_BAD_ROW, default="error",
                   help="--list: a row that is not UTF-8 or has the wrong number of fields stops with its "
                        "file:line (error, the default), or is left out and counted (skip)")
    p.add_argument("--resize", type=int, default=0, metavar="PX",
                   help="shrink so the shorter side is PX (never enlarges); 0 keeps the size")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of re-encoded images (1-100)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"skip (and count) images of more than N pixels, checked before decoding (default "
                        f"{DEFAULT_MAX_PIXELS:,}, PIL's limit; 0: none)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> None:
    if args.index:
        for shard in args.index:
            if not os.path.isfile(shard):
                raise ConfigError(f"--index: shard '{shard}' does not exist")
            index = write_index(shard, allow_truncated=args.allow_truncated)
            note = " (truncated: samples past the end will be skipped)" if index.truncated else ""
            print(f"indexed {len(index)} samples of {shard}{note}")
        return
    if not args.output:
        raise ConfigError("--output DIR is required to write shards")
    if not 1 <= args.quality <= 100:
        raise ConfigError(f"--quality must be in 1..100, got {args.quality}")
    if args.resize < 0 or args.shard_size < 1 or args.workers < 1:
        raise ConfigError("--resize must be >= 0, --shard-size and --workers >= 1")
    try:
        check_max_pixels(args.max_pixels)
    except ValueError as e:
        raise ConfigError(f"--max-pixels: {e}") from None
    if os.path.exists(args.output) and not args.overwrite:
        raise ConfigError(f"'{args.output}' exists: pass --overwrite to replace it, or choose another --output")
    classes: Optional[List[str]] = None
    bad_rows: List[dict] = []
    if args.folder:
        classes, jobs = folder_jobs(args.folder)
    elif args.list:
        jobs, bad_rows = list_jobs(args.list, args.image_col, args.caption_col, args.label_col,
                                   on_bad_row=args.on_bad_row)
    else:
        jobs = image_jobs(args.images)
    if not jobs:
        raise ConfigError("no images found in the input")
    manifest = write_image_shards(jobs, args.output, classes=classes, resize=args.resize, quality=args.quality,
                                  shard_size=args.shard_size, workers=args.workers, overwrite=args.overwrite,
                                  progress=not args.no_progress, max_pixels=args.max_pixels, bad_rows=bad_rows)
    rows = f", {len(bad_rows)} bad row(s) of the list skipped" if args.list else ""
    print(f"wrote {manifest['samples']} samples in {len(manifest['shards'])} shard(s) to {args.output}"
          f" ({manifest['skipped_count']} unreadable input(s) skipped{rows})")


# --- inputs ------------------------------------------------------------------------------------------

def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not os.path.basename(name).startswith(".")


def _walk(folder: str) -> List[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if _is_image(f)]
    return found


def folder_jobs(folder: str) -> Tuple[List[str], List[Job]]:
    if not os.path.isdir(folder):
        raise ConfigError(f"--folder '{folder}' is not a directory")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
                     and not d.startswith("."))
    if not classes:
        raise ConfigError(f"--folder '{folder}' has no class sub-folders (expected DIR/<class>/<image>)")
    jobs = [(path, label, None, {"path": os.path.relpath(path, folder), "class": name})
            for label, name in enumerate(classes) for path in _walk(os.path.join(folder, name))]
    return classes, jobs


def list_jobs(path: str, image_col: str, caption_col: str, label_col: str = "", *,
              on_bad_row: str = "error") -> Tuple[List[Job], List[dict]]:
    """(jobs, bad rows skipped) of an image-text list (list_rows.py: csv quoting, UTF-8, named columns)."""
    if not image_col:
        raise ConfigError("--image-col must name the column with the image paths")
    required = {image_col: "--image-col", caption_col: "--caption-col", label_col: "--label-col"}
    reader = ListReader(path, required=required, on_bad_row=on_bad_row,
                        optional_flags=("--caption-col", "--label-col"))
    base, jobs = os.path.dirname(os.path.abspath(path)), []
    for lineno, row in reader.rows():
        if row[image_col] in (None, ""):
            reader.bad_row(lineno, f"no '{image_col}' value")
            continue
        caption = row.get(caption_col) if caption_col else None
        if caption is not None and not isinstance(caption, str):
            reader.bad_row(lineno, f"the '{caption_col}' value is not text: {caption!r}")
            continue
        label = None
        if label_col and row.get(label_col) not in (None, ""):
            try:
                label = int(row[label_col])
            except (TypeError, ValueError):
                reader.bad_row(lineno, f"label '{row[label_col]}' is not an integer")
                continue
        image = str(row[image_col])
        jobs.append((os.path.join(base, image), label, None if caption in (None, "") else caption,
                     {"path": image, "line": lineno}))
    return jobs, reader.bad


def image_jobs(paths: List[str]) -> List[Job]:
    files: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            files += _walk(p)
        elif p.lower().endswith(".txt"):
            base = os.path.dirname(os.path.abspath(p))
            with open(p, encoding="utf-8") as f:
                files += [os.path.join(base, line.strip()) for line in f if line.strip()]
        else:
            files.append(p)
    return [(path, None, None, {"path": path}) for path in files]


# --- conversion --------------------------------------------------------------------------------------

def encode_image(path: str, resize: int, quality: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The JPEG bytes to store: the original file when it is a JPEG that needs no change, else re-encoded from
    its RGB decoding (data/decode.py: value range kept, EXIF orientation applied, oversized images refused)."""
    from PIL import Image
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: unreadable image ({e.strerror})") from None
    try:
        rgb, fmt, mode = decode_rgb(data, max_pixels)  # a full decode: corrupt inputs fail here, at preprocessing
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    w, h = rgb.size
    if resize and min(w, h) > resize:
        scale = resize / min(w, h)
        rgb = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    elif fmt == "JPEG" and mode == "RGB":
        return data  # already what we would write: keep it bit-exact (the reader applies its EXIF orientation)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _convert(task):
    job, resize, quality, max_pixels = task
    try:
        return encode_image(job[0], resize, quality, max_pixels), None
    except DataError as e:
        return None, str(e)


def _bounded(pool, tasks, chunk: int):
    """Results in input order, converting `chunk` tasks at a time so encoded images never pile up."""
    tasks = iter(tasks)
    while True:
        batch = list(itertools.islice(tasks, chunk))
        if not batch:
            return
        yield from (pool.map(_convert, batch, chunksize=8) if pool else map(_convert, batch))


def write_image_shards(jobs: List[Job], output: str, *, classes: Optional[List[str]] = None, resize: int = 0,
                       quality: int = 95, shard_size: int = 1000, workers: int = 1, overwrite: bool = False,
                       progress: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                       bad_rows: Optional[List[dict]] = None) -> dict:
    """Convert `jobs` into `output/000000.tar`, ... and `output/manifest.json`; returns the manifest."""
    import multiprocessing

    tasks = ((job, resize, quality, max_pixels) for job in jobs)
    skipped: List[dict] = []
    labels: Dict[str, int] = {}
    captions = 0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc="images", unit="img", mininterval=1.0)
    with atomic_dir(output, overwrite=overwrite) as tmp:
        pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
        try:
            results = _bounded(pool, tasks, 64 * workers)
            with ShardWriter(os.path.join(tmp, "%06d.tar"), max_count=shard_size) as writer:
                n = 0
                for (path, label, caption, origin), (jpeg, error) in zip(jobs, results):
                    if bar is not None:
                        bar.update(1)
                    if jpeg is None:
                        skipped.append({"path": path, "error": error})
                        continue
                    sample: Dict[str, bytes] = {"jpg": jpeg}
                    if label is not None:
                        sample["cls"] = str(label).encode()
                        labels[str(label)] = labels.get(str(label), 0) + 1
                    if caption is not None:
                        sample["txt"] = caption.encode("utf-8")
                        captions += 1
                    sample["json"] = json.dumps({**origin, "key": f"{n:09d}"}, ensure_ascii=False).encode()
                    writer.write(f"{n:09d}", sample)
                    n += 1
        finally:
            if pool is not None:
                pool.terminate()
            if bar is not None:
                bar.close()
        if n == 0:
            raise DataError(f"none of the {len(jobs)} input images could be read; first error: "
                            f"{skipped[0]['error']}")
        manifest = {"version": MANIFEST_VERSION, "kind": "images", "samples": n, "captions": captions,
                    "classes": classes, "label_counts": labels, "resize": resize, "quality": quality,
                    "skipped_count": len(skipped), "skipped": skipped[:1000], "shards": writer.shards}
        if bad_rows is not None:
            manifest.update(bad_rows_count=len(bad_rows), bad_rows=bad_rows[:1000])
        atomic_write_text(os.path.join(tmp, "manifest.json"), json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest
