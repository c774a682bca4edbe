"""FSDP2 (train.parallel "fsdp") on 2 CPU processes (gloo): it trains, its losses equal DDP's within 1e-5 over 5
steps, and its sharded checkpoint, saved by 2 ranks, resumes on 1 bit-exactly (then trains on like the 2-rank
run); the consolidated model of a sharded checkpoint loads like any other."""
import json
import os
import subprocess
import sys

import pytest
import torch

from cli_utils import REPO, TINY_MAE

SETS = TINY_MAE + ["train.total_steps=5", "train.precision=fp32", "train.log_every=1", "train.save_every=0",
                   "train.keep_last=0", "train.loggers=[]", "schedule.warmup_steps=1"]


def _torchrun(nproc, out, *sets, opts=(), timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.join(REPO, "tests", "fsdp_worker.py"), *opts, "models/mae_vit.json", str(out), *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(os.path.join(out, "records.json")) as f:
        return {r["step"]: r["loss"] for r in json.load(f)}


def _assert_equal_state(a, b, where="state"):
    """Bit-equal nested state (tensors, dicts, lists, numbers, names)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert sorted(a, key=str) == sorted(b, key=str), where
        for k in a:
            _assert_equal_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.distributed
def test_fsdp_matches_ddp_and_resumes_on_another_world_size(tmp_path):
    ddp = _torchrun(2, tmp_path / "ddp", *SETS, "train.parallel=ddp")
    fsdp = _torchrun(2, tmp_path / "fsdp", *SETS, "train.parallel=fsdp", opts=("--stop-at", "3"))
    assert sorted(ddp) == sorted(fsdp) == [1, 2, 3, 4, 5]
    for step in ddp:
        assert abs(ddp[step] - fsdp[step]) < 1e-5, (step, ddp[step], fsdp[step])
    assert fsdp[5] < fsdp[1]  # it trains

    ckpt = tmp_path / "fsdp" / "checkpoints" / "step_00000003"
    assert (ckpt / "state" / ".metadata").is_file() and not (ckpt / "model.pt").exists()
    one = _torchrun(1, tmp_path / "one", *SETS, "train.parallel=fsdp", opts=("--resume-from", str(ckpt)))
    saved = torch.load(tmp_path / "fsdp" / "state.pt", weights_only=True)
    resumed = torch.load(tmp_path / "one" / "state.pt", weights_only=True)
    _assert_equal_state(saved, resumed)  # 2 ranks' shards -> 1 rank, bit for bit
    assert sorted(one) == [4, 5]
    for step in one:  # 1 x B after the resume equals 2 x B/2 (as DDP does)
        assert abs(one[step] - fsdp[step]) < 1e-5, (step, one[step], fsdp[step])

    from m3i_modular.training.checkpoint import load_tensors, resolve_checkpoint
    assert resolve_checkpoint(str(ckpt)) == str(ckpt)
    _assert_equal_state(load_tensors(str(ckpt), "model"), saved["model"])
