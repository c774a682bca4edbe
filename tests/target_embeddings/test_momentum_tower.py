import math

import torch

from m3i_modular.recipe.model import build_model

MODEL = {
    "embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
    "encoder": {"type": "transformer", "layers": 2, "heads": 2, "dim": 32, "drop_path": 0.5},
    "objectives": {
        "inter": {"input": "view1", "target_view": "view2", "target_embedding": "@ema",
                  "decoder": {"type": "transformer_predictor", "layers": 1, "dim": 32, "heads": 2},
                  "target": {"type": "gaussian", "second_moment_weight": 0.02}}},
}
SHARED = {"ema": {"type": "momentum", "of": ["embedding", "encoder"], "momentum": [0.9, 1.0]}}


def _batch(b=4):
    g = torch.Generator().manual_seed(0)
    geom = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]).repeat(b, 1)
    return {"views": {"view1": torch.randn(b, 3, 16, 16, generator=g), "view2": torch.randn(b, 3, 16, 16, generator=g)},
            "geometry": {"view1": geom, "view2": geom}}


def test_copy_starts_equal_has_no_grad_and_stays_in_eval():
    m = build_model(MODEL, SHARED, seed=0)
    ema = m.shared["ema"]
    for (n, p), q in zip(m.encoder.named_parameters(), ema.copies[1].parameters()):
        assert torch.equal(p, q) and not q.requires_grad, n
    m.train()
    assert not ema.copies.training and m.encoder.training
    out = m(_batch())
    out["loss"].backward()
    assert all(p.grad is None for p in ema.parameters())
    assert m.encoder.blocks[0].attn.qkv.weight.grad is not None
    # no gradient and eval mode: the target is deterministic despite drop_path
    t1 = ema(_batch(), view="view2").value
    t2 = ema(_batch(), view="view2").value
    assert torch.equal(t1, t2) and not t1.requires_grad
    # last block through an affine-free LayerNorm: zero mean, unit variance per token
    assert torch.allclose(t1.mean(-1), torch.zeros(t1.shape[:-1]), atol=1e-5)
    assert torch.allclose(t1.var(-1, unbiased=False), torch.ones(t1.shape[:-1]), atol=1e-3)


def test_ema_update_math_and_cosine_schedule():
    m = build_model(MODEL, SHARED, seed=0)
    ema = m.shared["ema"]
    assert math.isclose(ema.momentum_at(0, 10), 0.9) and math.isclose(ema.momentum_at(10, 10), 1.0)
    assert math.isclose(ema.momentum_at(5, 10), 0.95)
    w_online = m.encoder.blocks[0].mlp.fc1.weight
    before = ema.copies[1].blocks[0].mlp.fc1.weight.clone()
    with torch.no_grad():
        w_online.add_(1.0)
    m.after_optimizer_step(5, 10)                       # m = 0.95
    after = ema.copies[1].blocks[0].mlp.fc1.weight
    assert torch.allclose(after, 0.95 * before + 0.05 * w_online, atol=1e-6)
    m.after_optimizer_step(10, 10)                      # m = 1: frozen
    assert torch.allclose(ema.copies[1].blocks[0].mlp.fc1.weight, after)
    m.after_init_from()                                 # restarts from the online weights
    assert torch.equal(ema.copies[1].blocks[0].mlp.fc1.weight, w_online)


def test_state_dict_holds_the_ema_once():
    m = build_model(MODEL, SHARED, seed=0)
    keys = list(m.state_dict())
    assert any(k.startswith("shared.ema.copies.1.blocks.0") for k in keys)
    assert not any(k.startswith("objectives.inter.target_embedding") for k in keys)


def test_batch_norm_batch_uses_batch_statistics_only_while_training():
    # a BYOL-style tower with a BN projector: "batch" normalises the teacher's head with the batch's
    # statistics while training (as BYOL's target network), "running" with the running statistics
    model = {"embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
             "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 32},
             "objectives": {"byol": {"input": "view1", "target_view": "view2", "target_embedding": "@ema",
                                     "decoder": {"type": "projector_predictor", "pool": "mean",
                                                 "projector_hidden": 16, "projector_layers": 2,
                                                 "predictor_hidden": 16, "predictor_layers": 2},
                                     "target": {"type": "gaussian", "loss": "cosine"}}}}
    outs = {}
    for mode in ("running", "batch"):
        shared = {"ema": {"type": "momentum", "of": ["embedding", "encoder", "objectives.byol.decoder.projector"],
                          "feature": "output", "norm": "none", "pool": "mean", "dim": 32, "batch_norm": mode}}
        m = build_model(model, shared, seed=0)
        ema = m.shared["ema"]
        bns = [x for x in ema.copies.modules() if isinstance(x, torch.nn.BatchNorm1d)]
        m.eval()
        assert bns and not any(x.training for x in bns)
        outs[mode + "_eval"] = ema(_batch(8), view="view2").value
        m.train()
        assert all(x.training == (mode == "batch") for x in bns)
        assert not ema.copies[1].training                     # the tower itself stays in eval mode
        outs[mode] = ema(_batch(8), view="view2").value
    # batch statistics: the teacher's BN output is zero-mean over the batch before the last Linear, so its
    # outputs differ from the running-statistics ones (running mean 0, var 1 at init)
    assert not torch.allclose(outs["batch"], outs["running"], atol=1e-4)
    assert torch.allclose(outs["batch_eval"], outs["running_eval"])
    assert torch.allclose(outs["running"], outs["running_eval"])
