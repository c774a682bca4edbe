"""Paper-scale contrastive recipes build on the meta device with the papers' parameter counts."""
import os

import pytest
import torch

from m3i_modular.recipe.config import load_config
from m3i_modular.recipe.model import build_model
from m3i_modular.run import parameter_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ViT-B/16 without a head: 85,798,656 parameters with learned positions (timm vit_base_patch16_224,
# num_classes=0). Our learned table covers the 196 patches, not the CLS token (768 fewer); MoCo v3's fixed
# sin-cos table is a buffer (197 x 768 fewer).
VIT_B = 85_798_656
CLS_POS = 768
SINCOS = 197 * 768


def _build(name):
    cfg = load_config(os.path.join(ROOT, "models", f"{name}.json"))
    with torch.device("meta"):
        model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    return cfg, model, parameter_table(model)


def _mlp(dims, bn_hidden=True, last_bn_affine=False):
    """Linear(no bias)-BN-ReLU hidden layers, a final Linear with bias (optionally an affine-free BN)."""
    n = 0
    for a, b in zip(dims[:-2], dims[1:-1]):
        n += a * b + (2 * b if bn_hidden else b)
    return n + dims[-2] * dims[-1] + dims[-1]


@pytest.mark.parametrize("name,tower", [("mocov3_vit_base", VIT_B - SINCOS), ("byol_vit_base", VIT_B - CLS_POS),
                                        ("simclr_vit_base", VIT_B - CLS_POS)])
def test_image_tower_is_vit_b16(name, tower):
    _, model, table = _build(name)
    assert table["embedding"] + table["encoder"] == tower
    assert model.embedding.num_prefix == 1          # CLS pooling


def test_mocov3_base_heads_and_momentum_copy():
    cfg, model, table = _build("mocov3_vit_base")
    proj = _mlp([768, 4096, 4096, 256])
    pred = _mlp([256, 4096, 256])
    assert table["objectives.mocov3"] == proj + pred
    assert table["shared.ema"] == VIT_B - SINCOS + proj   # the target is the EMA tower + projector
    assert "objectives.mocov3_sym" not in table            # tied: one projector / predictor
    assert cfg["optim"]["param_groups"] == [{"match": "embedding.proj.*", "lr_mult": 0.0}]
    assert cfg["model"]["objectives"]["mocov3"]["target"]["temperature"] == 0.2
    assert not any(p.requires_grad for p in model.shared["ema"].parameters())


def test_byol_and_simclr_base_heads():
    _, _, byol = _build("byol_vit_base")
    assert byol["objectives.byol"] == _mlp([768, 4096, 256]) + _mlp([256, 4096, 256])
    assert byol["shared.ema"] == VIT_B - CLS_POS + _mlp([768, 4096, 256])
    _, _, simclr = _build("simclr_vit_base")
    assert simclr["objectives.simclr"] == _mlp([768, 2048, 128])


def test_clip_base_is_149_6m():
    # OpenAI CLIP ViT-B/16: 149,620,737 parameters (open_clip); ours differs by a few vectors (no ln_pre,
    # no CLS position, a projection bias), well under 0.01%.
    _, model, table = _build("clip_vit_base")
    assert abs(table["total"] - 149_620_737) < 2_000
    text = model.objectives["clip"].target_embedding
    assert len(text.encoder.blocks) == 12 and text.encoder.dim == 512
