"""clip_vit, mocov3_vit, simclr_vit, byol_vit: each loss is the paper's formula computed by hand from the
model's own parts (tests/recipes/test_every_recipe.py trains every recipe through the CLI)."""
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from m3i_modular.interfaces import Selection
from m3i_modular.recipe.model import build_model
from m3i_modular.run import build_optim, build_run

sys.path.insert(0, os.path.dirname(__file__))
from contrastive_helpers import tiny_config, two_view_batch  # noqa: E402


def _encode_pool(model, images):
    return model.encoder(model.embedding(images)).mean(1)


def _sel(model, images):
    z = model.encoder(model.embedding(images))
    return Selection(z=z, rows=torch.arange(z.shape[0]))


@pytest.mark.parametrize("name,first,second", [("byol_vit", "byol", "byol_sym"),
                                               ("mocov3_vit", "mocov3", "mocov3_sym")])
def test_swapping_the_views_swaps_the_two_symmetric_terms(name, first, second):
    cfg = tiny_config(name)
    model = build_model(cfg["model"], cfg.get("shared"), seed=0).train()
    batch = two_view_batch()
    swapped = {"views": {"view1": batch["views"]["view2"], "view2": batch["views"]["view1"]}}
    a, b = model(batch), model(swapped)
    assert torch.allclose(a[f"{first}_loss"], b[f"{second}_loss"], atol=1e-6)
    assert torch.allclose(a[f"{second}_loss"], b[f"{first}_loss"], atol=1e-6)
    assert not torch.allclose(a[f"{first}_loss"], a[f"{second}_loss"])


def _train_step(recipe):
    """The tiny recipe's model in train mode, a two-view batch and the model's output on it."""
    cfg = tiny_config(recipe)
    model = build_model(cfg["model"], cfg.get("shared"), seed=0).train()
    batch = two_view_batch()
    return model, batch, model(batch)


def _ema_keys(model, images):
    """The momentum tower + projector copy on a view, the way MoCo v3 / BYOL build their keys."""
    emb, enc, proj = model.shared["ema"].copies
    z = enc(emb(images)).mean(1)
    return proj(Selection(z=z.unsqueeze(1), rows=torch.arange(z.shape[0])))


def test_byol_loss_is_two_minus_two_cosine_to_the_momentum_projection():
    model, batch, out = _train_step("byol_vit")
    with torch.no_grad():
        dec = model.objectives["byol"].decoder
        q = dec(_sel(model, batch["views"]["view1"]))
        k = _ema_keys(model, batch["views"]["view2"])
    want = (2 - 2 * F.cosine_similarity(q, k, dim=-1)).mean()
    assert torch.allclose(out["byol_loss"], want, atol=1e-5)


def test_mocov3_loss_is_infonce_at_tau_0_2_against_momentum_keys():
    model, batch, out = _train_step("mocov3_vit")
    with torch.no_grad():
        q = F.normalize(model.objectives["mocov3"].decoder(_sel(model, batch["views"]["view1"])), dim=-1)
        k = F.normalize(_ema_keys(model, batch["views"]["view2"]), dim=-1)
    want = F.cross_entropy(q @ k.T / 0.2, torch.arange(q.shape[0]))
    assert torch.allclose(out["mocov3_loss"], want, atol=1e-5)
    assert model.objectives["mocov3"].weight == pytest.approx(0.4)   # MoCo v3 scales by 2 * tau


def test_simclr_loss_is_nt_xent_over_both_views():
    model, batch, out = _train_step("simclr_vit")
    with torch.no_grad():
        dec = model.objectives["simclr"].decoder
        z1 = dec(_sel(model, batch["views"]["view1"]))
        z2 = dec(_sel(model, batch["views"]["view2"]))
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    n = z1.shape[0]
    sim = (z @ z.T / 0.2).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n) + n, torch.arange(n)])
    want = F.cross_entropy(sim, target)
    assert torch.allclose(out["simclr_loss"], want, atol=1e-5)


def test_mocov3_freezes_the_random_patch_embedding_only():
    cfg = tiny_config("mocov3_vit")
    run = build_run(cfg, with_data=False)
    opt, _ = build_optim(run)
    model = run.model.train()
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) not in in_opt and not p.requires_grad for p in model.embedding.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(two_view_batch())["loss"].backward()
    opt.step()
    after = model.state_dict()
    assert torch.equal(before["embedding.proj.weight"], after["embedding.proj.weight"])
    assert not torch.equal(before["encoder.blocks.0.attn.qkv.weight"], after["encoder.blocks.0.attn.qkv.weight"])
