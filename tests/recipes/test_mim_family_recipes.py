"""SimMIM, data2vec and SiameseIM recipes: each objective computes the loss its paper defines
(tests/recipes/test_every_recipe.py trains every recipe through the CLI)."""
import os

import torch

from m3i_modular.recipe.config import load_config
from m3i_modular.recipe.model import build_model
from m3i_modular.target_embeddings.basic import patchify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
