"""synthetic_shapes: determinism, held-out split, field dropping, per-class sanity, config errors."""
import pytest
import torch

from m3i_modular.data.sources.synthetic_shapes import SyntheticShapes
from m3i_modular.errors import ConfigError
from m3i_modular.registry import DATASETS, build


def _same(a, b):
    return (a["key"] == b["key"] and torch.equal(a["image"], b["image"]) and torch.equal(a["seg"], b["seg"])
            and a["label"] == b["label"] and a["caption"] == b["caption"])


def test_same_seed_same_sample_and_index_matters():
    a, b = SyntheticShapes(num_samples=50, seed=7), SyntheticShapes(num_samples=50, seed=7)
    for i in (0, 13, 49):
        assert _same(a[i], b[i])
    assert not torch.equal(a[0]["image"], a[1]["image"])
    assert not torch.equal(a[0]["image"], SyntheticShapes(num_samples=50, seed=8)[0]["image"])
    assert a[-1]["key"] == a[49]["key"]
    with pytest.raises(IndexError):
        a[50]


def test_raw_sample_contract():
    s = SyntheticShapes(num_samples=4, image_size=24)[0]
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 24, 24)
    assert s["seg"].dtype == torch.uint8 and s["seg"].shape == (24, 24)
    assert isinstance(s["label"], int) and isinstance(s["caption"], str) and isinstance(s["key"], str)


def test_val_split_is_a_different_stream():
    tr, va = SyntheticShapes(num_samples=20), SyntheticShapes(num_samples=20, split="val")
    train_imgs = {bytes(tr[i]["image"].numpy()) for i in range(20)}
    assert not any(bytes(va[i]["image"].numpy()) in train_imgs for i in range(20))


def test_fractions_drop_fields_without_changing_images():
    full = SyntheticShapes(num_samples=400)
    part = SyntheticShapes(num_samples=400, label_fraction=0.3, caption_fraction=0.6)
    labels = captions = 0
    for i in range(400):
        a, b = full[i], part[i]
        assert torch.equal(a["image"], b["image"])
        labels += b["label"] is not None
        captions += b["caption"] is not None
        if b["label"] is not None:
            assert b["label"] == a["label"]
    assert abs(labels / 400 - 0.3) < 0.08 and abs(captions / 400 - 0.6) < 0.08
    none = SyntheticShapes(num_samples=10, label_fraction=0.0, caption_fraction=0.0)
    assert all(none[i]["label"] is None and none[i]["caption"] is None for i in range(10))


def test_every_class_appears_with_a_matching_mask_and_caption():
    ds = SyntheticShapes(num_samples=300)
    assert len(ds.classes) >= 8 and len(set(ds.classes)) == len(ds.classes)
    seen = set()
    for i in range(300):
        s = ds[i]
        seen.add(s["label"])
        values = set(s["seg"].unique().tolist())
        assert values == {0, s["label"] + 1}, "mask marks the shape with label + 1 on a 0 background"
        assert (s["seg"] > 0).sum() >= 10
        assert f" {ds.classes[s['label']]} " in s["caption"]
    assert seen == set(range(len(ds.classes)))


def test_shape_pixels_carry_the_shape_colour():
    ds = SyntheticShapes(num_samples=30)
    for i in range(30):
        s = ds[i]
        inside = s["image"][:, s["seg"] > 0].float()
        # the shape is a flat colour plus mild noise; only its anti-aliased rim mixes in the background
        close = ((inside - inside.median(1, keepdim=True).values).abs() < 15).all(0)
        assert close.float().mean() > 0.6


def test_registered_and_validated():
    ds = build(DATASETS, {"type": "synthetic_shapes", "num_samples": 8})
    assert len(ds) == 8
    with pytest.raises(ConfigError, match="split"):
        build(DATASETS, {"type": "synthetic_shapes", "split": "valid"})
    with pytest.raises(ConfigError, match="label_fraction"):
        build(DATASETS, {"type": "synthetic_shapes", "label_fraction": 1.5})
