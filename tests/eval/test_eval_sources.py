"""The data an evaluation reads: the `image_folder` source (class folders read directly, usable in recipes,
unreadable files skipped and counted), and the strings --train-data / --val-data accept."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from m3i_modular.data.sources.image_folder import ImageFolder
from m3i_modular.data.views.pipeline import PretrainDataset, build_views, collate
from m3i_modular.data.views.view import View
from m3i_modular.errors import ConfigError, DataError
from m3i_modular.eval.features import read_split, view_mask
from m3i_modular.eval.sources import build_data_source, class_names, source_config
from m3i_modular.eval.transform import eval_transform
from m3i_modular.preprocess.images import folder_jobs, write_image_shards

CLASSES = ("zebra", "apple", "moth")  # sorted: apple 0, moth 1, zebra 2


def _folder(root, per_class=3, broken=()):
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (10, 14, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    (root / "moth" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    for rel in broken:
        (root / rel).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_image_folder_labels_are_sorted_folder_names(tmp_path):
    src = ImageFolder(root=str(_folder(tmp_path / "d")))
    assert src.classes == ["apple", "moth", "zebra"] and len(src) == 9
    assert src.labels() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    s = src[4]
    assert s["label"] == 1 and s["key"] == "moth/1" and s["image"].shape == (3, 10, 14)
    assert s["image"].dtype == torch.uint8 and s["caption"] is None and s["seg"] is None
    split = ImageFolder(root=str(tmp_path), split="d")   # root/<split>/<class>
    assert split.labels() == src.labels()


def test_image_folder_in_a_recipe_skips_and_counts_unreadable_images(tmp_path):
    root = _folder(tmp_path / "d", broken=("apple/9.png",))
    views = build_views({"v": [{"type": "resize", "size": 8}, {"type": "center_crop", "size": 8}]})
    ds = PretrainDataset({"sources": [{"type": "image_folder", "root": str(root), "weight": 1.0}],
                          "max_skip_share": 1.0}, views)
    with pytest.raises(DataError, match="9.png"):
        ds.sources[0][3]
    batch = collate([ds[p] for p in range(len(ds))])
    assert int(batch["skipped"]) == 1 and batch["skipped_from"][0].endswith("9.png")
    assert batch["views"]["v"].shape == (10, 3, 8, 8)
    # evaluation reads skip it as well, and count it
    data = read_split(ds.sources[0], eval_transform({"views": {"v": [{"type": "center_crop", "size": 8}]}}))
    assert len(data) == 9 and data.skipped == 1 and data.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_image_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no class sub-folders"):
        ImageFolder(root=str(tmp_path / "empty"))
    (tmp_path / "empty" / "cls").mkdir()
    with pytest.raises(ConfigError, match="hold no images"):
        ImageFolder(root=str(tmp_path / "empty"))
    _folder(tmp_path / "d")
    with pytest.raises(ConfigError, match="no split folder .*val"):
        ImageFolder(root=str(tmp_path / "d"), split="val")


def test_data_strings_resolve_to_sources(tmp_path):
    root = _folder(tmp_path / "d")
    assert source_config(str(root)) == {"type": "image_folder", "root": str(root)}
    classes, jobs = folder_jobs(str(root))
    write_image_shards(jobs, str(tmp_path / "shards"), classes=classes, shard_size=4)
    shards = tmp_path / "shards"
    assert source_config(str(shards))["type"] == "webdataset_shards"
    assert source_config(str(shards / "manifest.json"))["shards"] == str(shards / "manifest.json")
    assert source_config(str(shards / "{000000..000002}.tar"))["type"] == "webdataset_shards"
    obj = json.dumps({"type": "image_folder", "root": str(root), "weight": 3})
    assert source_config(obj) == {"type": "image_folder", "root": str(root)}
    # class names: the folder names, or the manifest beside shards
    assert class_names(build_data_source(str(root))) == ["apple", "moth", "zebra"]
    from_shards = build_data_source(str(shards / "{000000..000002}.tar"))
    assert len(from_shards) == 9 and class_names(from_shards) == ["apple", "moth", "zebra"]
    for bad, what in [(str(tmp_path / "nope"), "no such file or folder"), ("{\"root\": 1}", "needs a 'type'"),
                      (str(tmp_path / "shards" / "000000.tar.idx.json"), "not a shard manifest"),
                      (str(tmp_path / "d" / "apple"), "neither .tar shards nor class sub-folders")]:
        with pytest.raises(ConfigError, match=what):
            build_data_source(bad, flag="--val-data")


def test_view_mask_follows_crop_and_flip():
    seg = torch.arange(16).view(4, 4)
    ident = View(image=torch.zeros(3, 8, 8))
    assert torch.equal(view_mask(seg, ident), seg.repeat_interleave(2, 0).repeat_interleave(2, 1))
    right_half_flipped = View(image=torch.zeros(3, 4, 2), box=(0.5, 0.0, 1.0, 1.0), flip=True)
    assert torch.equal(view_mask(seg, right_half_flipped), seg[:, 2:].flip(1))
