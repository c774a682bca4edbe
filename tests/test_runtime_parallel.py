"""Thread counts (cores available minus loader workers, overridable, printed), SDPA backend pinning,
activation checkpointing and compiled blocks that leave the math and the checkpoint keys unchanged."""
import copy

import pytest
import torch
import torch.nn.functional as F

from cli_utils import TINY_MAE, run_cli
from m3i_modular.runtime.parallel import blocks, compile_blocks, set_activation_checkpointing
from m3i_modular.runtime.threads import plan_threads, set_sdpa_backend


def test_thread_plan():
    assert plan_threads(workers=1, cores=2, env={})[0] == 1                   # the 2-core machine
    assert plan_threads(workers=0, cores=8, env={})[0] == 8
    assert plan_threads(workers=2, cores=16, ranks_here=2, env={})[0] == 6   # 16 / 2 ranks - 2 workers
    assert plan_threads(workers=4, cores=2, env={})[0] == 1                   # never below one
    assert plan_threads(requested=3, workers=1, cores=2, env={"OMP_NUM_THREADS": "1"}) == (3, "train.threads")
    assert plan_threads(workers=1, cores=8, env={"OMP_NUM_THREADS": "2"}) == (2, "OMP_NUM_THREADS")


def test_threads_printed_at_start(tmp_path):
    sets = TINY_MAE + ["train.total_steps=1", "train.threads=1"]
    proc = run_cli("pretrain.py", "--config", "models/mae_vit.json", *[a for s in sets for a in ("--set", s)],
                   "--output-dir", str(tmp_path / "r"), check=True)
    assert "threads: 1 per rank (train.threads)" in proc.stderr


def test_sdpa_backend_pinning():
    q = torch.randn(2, 2, 8, 4)
    want = F.scaled_dot_product_attention(q, q, q)
    try:
        set_sdpa_backend("math")
        torch.testing.assert_close(F.scaled_dot_product_attention(q, q, q), want)
        assert not torch.backends.cuda.flash_sdp_enabled()
        with pytest.raises(ValueError):
            set_sdpa_backend("fast")
    finally:
        set_sdpa_backend("auto")
    assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()


def _tiny_mae():
    from m3i_modular.recipe.config import load_config
    from m3i_modular.training.flops import sample_batch
    from m3i_modular.run import build_run
    run = build_run(load_config("models/mae_vit.json", overrides=TINY_MAE))
    return run.model, sample_batch(run.dataset, run.collate, 4)


def _loss_and_grads(model, batch):
    torch.manual_seed(0)
    loss = model(batch)["loss"]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_keeps_loss_and_gradients():
    model, batch = _tiny_mae()
    ref = copy.deepcopy(model)
    assert set_activation_checkpointing(model) >= 1 and model.encoder.checkpointing
    (l1, g1), (l0, g0) = _loss_and_grads(model, batch), _loss_and_grads(ref, batch)
    assert torch.equal(l1, l0)
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=0, atol=1e-6, msg=n)


@pytest.mark.slow
def test_compiled_blocks_keep_math_and_checkpoint_keys(tmp_path):
    model, batch = _tiny_mae()
    ref = copy.deepcopy(model)
    keys = list(model.state_dict())
    assert compile_blocks(model) == len(blocks(ref)) > 0
    (l1, g1), (l0, g0) = _loss_and_grads(model, batch), _loss_and_grads(ref, batch)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-4, atol=1e-5, msg=n)
    assert list(model.state_dict()) == keys and not any("_orig_mod" in k for k in keys)
    # a compiled run's checkpoint has the same keys as an eager one's
    sets = TINY_MAE + ["train.total_steps=1", "train.compile=true"]
    run_cli("pretrain.py", "--config", "models/mae_vit.json", *[a for s in sets for a in ("--set", s)],
            "--output-dir", str(tmp_path / "r"), check=True, timeout=900)
    saved = torch.load(tmp_path / "r" / "checkpoints" / "step_00000001" / "model.pt", weights_only=True)
    assert list(saved) == keys
