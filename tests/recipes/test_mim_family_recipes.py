"""SimMIM, data2vec and SiameseIM recipes: the real CLI trains each at tiny size, and each objective computes
the loss its paper defines."""
import math
import os

import pytest
import torch

from cli_utils import read_metrics, run_cli
from m3i_modular.config import load_config
from m3i_modular.model import build_model
from m3i_modular.target_embeddings.basic import patchify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["model.embedding.image_size=16", "model.embedding.dim=32", "model.encoder.dim=32",
        "model.encoder.layers=2", "model.encoder.heads=2", "data.sources.0.image_size=16",
        "data.sources.0.num_samples=64", "views.view1.0.size=16", "train.batch_size=8", "train.num_workers=0",
        "train.progress=false", "train.total_steps=2", "train.log_every=1", "train.precision=fp32"]
EXTRA = {
    "simmim_vit": [],
    "data2vec_vit": ["shared.ema.top_k=2"],
    "siameseim_vit": ["views.view2.0.size=16", "model.objectives.siameseim.decoder.dim=32",
                      "model.objectives.siameseim.decoder.heads=2", "model.objectives.siameseim.decoder.layers=1"],
}


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_recipe_trains_through_the_cli(name, tmp_path):
    out = tmp_path / name
    sets = [a for s in TINY + EXTRA[name] for a in ("--set", s)]
    proc = run_cli("pretrain.py", "--config", f"models/{name}.json", *sets, "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    obj = name.replace("_vit", "")
    assert all(math.isfinite(r[f"{obj}_loss"]) and r[f"{obj}_count"] > 0 for r in rows)


def _recipe_model(name):
    cfg = load_config(os.path.join(ROOT, "models", f"{name}.json"))
    return build_model(cfg["model"], cfg.get("shared"), seed=0)


def test_simmim_loss_is_l1_on_raw_pixels_of_masked_patches():
    m = _recipe_model("simmim_vit").eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 32, 32, generator=g)
    mask = torch.rand(2, 64, generator=g) < 0.6
    batch = {"views": {"view1": images}, "masks": {"view1": mask}}
    with torch.no_grad():
        got = m(batch)["simmim_loss"]
        enc = m.encode(batch, "view1")
        pred = m.objectives["simmim"].decoder.head(enc.z)
    want = (pred - patchify(images, 4)).abs().mean(-1)[mask].mean()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_siameseim_predicts_every_view2_token_from_relative_positions():
    m = _recipe_model("siameseim_vit").eval()
    g = torch.Generator().manual_seed(0)
    b = 2
    mask = torch.zeros(b, 64, dtype=torch.bool)
    mask[:, ::4] = True  # 25% dropped from the online view
    views = {"view1": torch.randn(b, 3, 32, 32, generator=g), "view2": torch.randn(b, 3, 32, 32, generator=g)}

    def loss(geom2):
        batch = {"views": views, "masks": {"view1": mask},
                 "geometry": {"view1": torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]).repeat(b, 1),
                              "view2": torch.tensor([geom2]).repeat(b, 1)}}
        with torch.no_grad():
            return m(batch)

    a = loss([0.0, 0.0, 1.0, 1.0, 0.0])
    shifted = loss([0.3, 0.2, 0.9, 0.8, 1.0])
    assert a["siameseim_count"].item() == b * 64          # every target token, not only masked ones
    assert "siameseim_neg" in a                           # the second-moment term is on
    # the predictor's queries carry view2's crop relative to view1: another crop, another prediction
    assert not torch.allclose(a["siameseim_pos"], shifted["siameseim_pos"])
