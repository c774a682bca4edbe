"""PretrainDataset, mixing order, sampler, tokenization and collate."""
import pytest
import torch
from torch.utils.data import DataLoader

from m3i_modular.data.sampling import PositionSampler, epoch_order
from m3i_modular.data.views.pipeline import PretrainDataset, build_views, collate, encode_text
from m3i_modular.errors import ConfigError

VIEWS = {"view1": [{"type": "random_resized_crop", "size": 16, "scale": [0.3, 1.0]}, {"type": "flip"},
                   {"type": "color_jitter"}, {"type": "normalize"}],
         "view2": [{"type": "random_resized_crop", "size": 16}, {"type": "gaussian_blur", "p": 1.0},
                   {"type": "random_mask", "patch_size": 4, "ratio": 0.75}]}


class WordTokenizer:
    pad_id, bos_id, eos_id = 0, 1, 2

    def encode(self, text):
        return [3 + len(w) for w in text.split()]


def make(data=None, seed=0, tokenizer=None):
    data = data or {"sources": [{"type": "synthetic_shapes", "num_samples": 64, "image_size": 24}],
                    "text_length": 12}
    return PretrainDataset(data, build_views(VIEWS), tokenizer=tokenizer or WordTokenizer(), seed=seed)


def batch(ds, positions):
    return collate([ds[p] for p in positions])


def test_batch_contract():
    b = batch(make(), range(4))
    assert b["views"]["view1"].shape == (4, 3, 16, 16) and b["views"]["view1"].dtype == torch.float32
    assert b["geometry"]["view2"].shape == (4, 5)
    assert set(b["masks"]) == {"view2"} and b["masks"]["view2"].shape == (4, 16)
    assert b["masks"]["view2"].sum(1).tolist() == [12] * 4
    assert b["label"].dtype == torch.long and b["text"].shape == (4, 12)
    assert b["present"]["label"].all() and b["present"]["text"].all()
    assert b["index"].tolist() == [0, 1, 2, 3] and len(b["key"]) == 4
    assert b["seg"].shape == (4, 24, 24)


def test_same_seed_same_batch_and_workers_do_not_matter():
    a, b = batch(make(), range(8)), batch(make(), range(8))
    for name in VIEWS:
        assert torch.equal(a["views"][name], b["views"][name])
    assert not torch.equal(a["views"]["view1"], batch(make(seed=1), range(8))["views"]["view1"])
    assert not torch.equal(a["views"]["view1"][0], a["views"]["view1"][1])
    loader = DataLoader(make(), batch_size=4, sampler=PositionSampler(total=8), collate_fn=collate,
                        num_workers=2)
    parts = list(loader)
    assert torch.equal(torch.cat([p["views"]["view1"] for p in parts]), a["views"]["view1"])
    assert torch.equal(torch.cat([p["masks"]["view2"] for p in parts]), a["masks"]["view2"])


def test_resume_skips_exactly_the_consumed_samples():
    ds = make()
    full = [ds[p]["key"] for p in PositionSampler(total=150)]      # crosses the 64-sample epoch boundary
    resumed = [ds[p]["key"] for p in PositionSampler(start=100, total=50)]
    assert resumed == full[100:]
    ranks = [list(PositionSampler(start=10, rank=r, world_size=2, total=6)) for r in range(2)]
    assert ranks == [[10, 12, 14], [11, 13, 15]]
    assert len(PositionSampler(rank=1, world_size=2, total=5)) == 2


def test_epoch_is_a_permutation_and_epochs_differ():
    s0, i0 = epoch_order([1.0], [50], 50, seed=0, epoch=0)
    s1, i1 = epoch_order([1.0], [50], 50, seed=0, epoch=1)
    assert (s0 == 0).all() and sorted(i0.tolist()) == list(range(50))
    assert sorted(i1.tolist()) == list(range(50)) and not torch.equal(i0, i1)


def test_source_weights():
    data = {"sources": [{"type": "synthetic_shapes", "num_samples": 500, "weight": 0.8},
                        {"type": "synthetic_shapes", "num_samples": 300, "seed": 1, "weight": 0.2}],
            "epoch_size": 2000}
    ds = make(data)
    picks = torch.tensor([ds.locate(p)[0] for p in range(2000)])
    assert abs(float((picks == 0).float().mean()) - 0.8) < 0.03
    # the minority source cycles through all of its samples before repeating one
    idx = [ds.locate(p)[1] for p in range(2000) if ds.locate(p)[0] == 1][:300]
    assert sorted(idx) == list(range(300))


def test_missing_fields_and_text_encoding():
    data = {"sources": [{"type": "synthetic_shapes", "num_samples": 200, "image_size": 16,
                         "label_fraction": 0.5, "caption_fraction": 0.3}], "text_length": 8}
    ds = PretrainDataset(data, {}, tokenizer=WordTokenizer())
    b = batch(ds, range(200))
    has_label = b["present"]["label"]
    assert ((b["label"] >= 0) == has_label).all() and 60 < int(has_label.sum()) < 140
    no_text = ~b["present"]["text"]
    assert (b["text"][no_text] == 0).all() and 30 < int((~no_text).sum()) < 90
    tok = WordTokenizer()
    assert encode_text("ab c", tok, 6).tolist() == [1, 5, 4, 2, 0, 0]
    assert encode_text("a b c d e f g", tok, 5).tolist() == [1, 4, 4, 4, 2]   # EOS survives truncation
    assert encode_text(None, tok, 3).tolist() == [0, 0, 0]


def test_config_errors_name_their_path():
    with pytest.raises(ConfigError, match=r"views\.view1\[1\]\.type.*'flip'"):
        build_views({"view1": [{"type": "resize", "size": 8}, {"type": "flipp"}]})
    with pytest.raises(ConfigError, match=r"views\.v\[0\]\.scal"):
        build_views({"v": [{"type": "random_resized_crop", "size": 8, "scal": [0.2, 1.0]}]})
    with pytest.raises(ConfigError, match=r"data\.sources\[0\]\.weight"):
        make({"sources": [{"type": "synthetic_shapes", "weight": -1}]})
    with pytest.raises(ConfigError, match=r"data\.sources\[0\]\.num_sample"):
        make({"sources": [{"type": "synthetic_shapes", "num_sample": 3}]})
    with pytest.raises(ConfigError, match=r"data\.batch_size"):
        make({"sources": [{"type": "synthetic_shapes"}], "batch_size": 3})
