"""torchrun with 2 CPU processes (gloo): ranks stay equal, and 2 x B/2 matches 1 x B."""
import json
import os
import subprocess
import sys

import pytest
import torch

from cli_utils import REPO, TINY_MAE, read_metrics

SETS = TINY_MAE + ["train.total_steps=3", "train.precision=fp32", "train.log_every=1", "train.save_every=0"]


def _torchrun(nproc, out, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.join(REPO, "tests", "ddp_worker.py"), "models/mae_vit.json", str(out), *SETS]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.distributed
def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    _torchrun(2, tmp_path / "two")
    _torchrun(1, tmp_path / "one")
    ranks = json.loads((tmp_path / "two" / "ranks.json").read_text())
    assert ranks["world"] == 2 and ranks["max_rank_diff"] == 0.0
    two, one = read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one")
    assert [r["step"] for r in two] == [1, 2, 3]
    for a, b in zip(two, one):
        assert abs(a["loss"] - b["loss"]) < 1e-6, (a, b)
    p2 = torch.load(tmp_path / "two" / "params.pt", weights_only=True)
    p1 = torch.load(tmp_path / "one" / "params.pt", weights_only=True)
    assert torch.allclose(p2, p1, atol=1e-5), float((p2 - p1).abs().max())
