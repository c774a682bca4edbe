"""`image_folder`: ImageNet-style class folders read directly, no preprocessing step.

    {"type": "image_folder", "root": "data/pets/train", "weight": 1.0}
    {"type": "image_folder", "root": "data/pets", "split": "val"}          # reads data/pets/val/<class>/...

`root/<class>/**/<image>`: the class index is the position of the folder name among the sorted class
folders, so the same folder names give the same labels in every split (`classes` lists them). Images are
found once, in sorted order, when the source is built; a file that cannot be decoded raises DataError when
it is read, and the reader substitutes another sample and counts the skip (`data_skipped` in metrics.jsonl,
`skipped` in an evaluation's results), as for shards; so is an image of more than `max_image_pixels` pixels
(default PIL's limit, checked on the header before decoding; 0: no limit). Decoding: data/decode.py.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from ...errors import DataError
from ...registry import DATASETS, config_error
from ..decode import DEFAULT_MAX_PIXELS, check_max_pixels, decode_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _images_under(folder: str) -> List[str]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".")]
    return found


def class_folders(root: str) -> List[str]:
    """The sorted names of root's sub-folders (hidden ones left out)."""
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))


@DATASETS.register("image_folder")
class ImageFolder:
    """Raw samples {"key", "image", "label", "caption": None, "seg": None} of class folders."""

    def __init__(self, *, root: str, split: Optional[str] = None, max_image_pixels: int = DEFAULT_MAX_PIXELS):
        if not isinstance(root, str) or not root:
            raise config_error("root must be a folder holding one sub-folder per class", "root")
        try:
            self.max_pixels = check_max_pixels(max_image_pixels)
        except ValueError as e:
            raise config_error(str(e), "max_image_pixels") from None
        folder = root if split is None else os.path.join(root, split)
        if not os.path.isdir(folder):
            if split is not None and os.path.isdir(root):
                have = ", ".join(class_folders(root)) or "none"
                raise config_error(f"no split folder '{folder}' (sub-folders of '{root}': {have}); evaluation "
                                   f"reads <root>/<split>/<class>/..., or pass --train-data / --val-data",
                                   "split")
            raise config_error(f"'{folder}' is not a folder", "root")
        self.root, self.split, self.folder = root, split, folder
        self.classes = class_folders(folder)
        if not self.classes:
            raise config_error(f"'{folder}' has no class sub-folders (expected {folder}/<class>/<image>)", "root")
        self.paths: List[str] = []
        self._labels: List[int] = []
        for label, name in enumerate(self.classes):
            found = _images_under(os.path.join(folder, name))
            self.paths += found
            self._labels += [label] * len(found)
        if not self.paths:
            raise config_error(f"the class folders of '{folder}' hold no images "
                               f"({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})", "root")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.paths)

    def labels(self) -> List[int]:
        """Every sample's class, known from the folders without reading an image."""
        return list(self._labels)

    def where(self, index: int) -> str:
        """The file of sample `index` (named in skip reports)."""
        return self.paths[index]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if not 0 <= index < len(self.paths):
            raise IndexError(f"index {index} out of range for {len(self.paths)} samples")
        path = self.paths[index]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None
        try:
            image = decode_image(data, self.max_pixels)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        key = os.path.splitext(os.path.relpath(path, self.folder))[0]
        return {"key": key, "image": image, "label": self._labels[index], "caption": None, "seg": None}
