import copy
import math

import pytest
import torch

from m3i_modular.recipe.config import load_config
from m3i_modular.recipe.model import build_model
from m3i_modular.run import build_run
from m3i_modular.target_embeddings.basic import patchify
from m3i_modular.targets.reduce import masked_mean

TINY = {"embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
        "encoder": {"type": "transformer", "layers": 2, "heads": 2, "dim": 32},
        "objectives": {
            "mae": {"input": "view1", "target_view": "view1", "loss_on": "masked",
                    "target_embedding": {"type": "pixels", "patch_size": 4},
                    "decoder": {"type": "transformer_predictor", "layers": 1, "dim": 32, "heads": 2},
                    "target": {"type": "gaussian"}},
            "cls": {"input": "view1", "target_view": "label",
                    "target_embedding": {"type": "category", "num_classes": 10},
                    "decoder": {"type": "pool"}, "target": {"type": "boltzmann"}}}}


def _batch(b=4, masked=12):
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(b, 16, dtype=torch.bool)
    for i in range(b):
        mask[i, torch.randperm(16, generator=g)[:masked]] = True
    return {"views": {"view1": torch.randn(b, 3, 16, 16, generator=g)}, "masks": {"view1": mask},
            "label": torch.tensor([1, 2, 3, -1])[:b], "present": {"label": torch.tensor([1, 1, 1, 0]).bool()[:b]}}


def test_supervised_vit_ce_at_step0_is_ln_classes():
    run = build_run(load_config("models/supervised_vit.json"), with_data=True)
    batch = run.collate([run.dataset[i] for i in range(8)])
    run.model.eval()
    out = run.model(batch)
    assert abs(float(out["category_loss"]) - math.log(10)) < 1e-5


def test_weight_zero_objective_is_not_built():
    cfg = copy.deepcopy(TINY)
    cfg["objectives"]["cls"]["weight"] = 0.0
    model = build_model(cfg)
    assert not any(k.startswith("objectives.cls") for k in model.state_dict())
    out = model(_batch())
    assert "cls_loss" not in out and torch.equal(out["loss"], out["mae_loss"])


def test_module_init_does_not_depend_on_other_objectives():
    a = build_model(TINY, seed=3)
    cfg = copy.deepcopy(TINY)
    del cfg["objectives"]["cls"]
    b = build_model(cfg, seed=3)
    for k, v in b.state_dict().items():
        assert torch.equal(v, a.state_dict()[k]), k
    c = build_model(cfg, seed=4)
    assert not torch.equal(c.encoder.blocks[0].attn.qkv.weight, b.encoder.blocks[0].attn.qkv.weight)


def test_invalid_rows_are_ignored_and_none_valid_is_a_connected_zero():
    model = build_model(TINY)
    batch = _batch()
    out = model(batch)
    # the 4th sample has no label: changing its label must not change the loss
    batch2 = dict(batch, label=torch.tensor([1, 2, 3, 7]))
    assert torch.equal(model(batch2)["cls_loss"], out["cls_loss"])
    batch3 = dict(batch, present={"label": torch.zeros(4, dtype=torch.bool)})
    out3 = model(batch3)
    assert float(out3["cls_loss"]) == 0.0
    out3["cls_loss"].backward()
    assert model.objectives["cls"].target_embedding.weight.grad is not None


def test_mae_loss_only_on_masked_patches():
    model = build_model(TINY)
    batch = _batch()
    x = torch.randn(4, 16, 48, requires_grad=True)
    w = batch["masks"]["view1"]
    assert torch.allclose(masked_mean(x.pow(2).mean(-1), w), x.pow(2).mean(-1)[w].mean())
    enc = model.encode(batch, "view1")
    assert enc.z.shape == (4, 4, 32)  # only the 4 visible patches are encoded


def test_patchify_layout():
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    p = patchify(img, 4)
    assert p.shape == (2, 4, 48)
    # patch 1 is the top-right 4x4 block; its first entry is pixel (0, 4) of channel 0, then channel 1
    assert p[0, 1, 0] == img[0, 0, 0, 4] and p[0, 1, 1] == img[0, 1, 0, 4] and p[1, 3, -1] == img[1, 2, 7, 7]


def test_mask_mode_replace_encodes_every_token():
    cfg = copy.deepcopy(TINY)
    cfg["mask_mode"] = "replace"
    model = build_model(cfg)
    enc = model.encode(_batch(), "view1")
    assert enc.z.shape == (4, 16, 32) and enc.keep is None


def test_bad_reference_is_a_config_error():
    from m3i_modular.errors import ConfigError
    cfg = copy.deepcopy(TINY)
    cfg["objectives"]["cls"]["target_embedding"] = "@nope"
    with pytest.raises(ConfigError, match="unknown reference '@nope'"):
        build_model(cfg)
