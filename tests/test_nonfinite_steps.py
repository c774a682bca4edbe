"""Non-finite steps are skipped and counted; train.max_bad_steps in a row stop the run with one line and its last
good checkpoint intact; under DDP a NaN on one rank makes every rank skip (the flag is all-reduced)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from cli_utils import REPO, TINY_MAE, read_metrics, run_cli

PLUGIN = os.path.join(REPO, "tests", "plugins", "lifecycle_plugin.py")


def _sets(*extra):
    base = TINY_MAE + ["train.log_every=1", "train.precision=fp32", "train.num_workers=0"]
    return [a for s in base + list(extra) for a in ("--set", s)]


def test_a_nan_step_is_skipped_and_counted(tmp_path):
    out = tmp_path / "run"
    args = ["pretrain.py", "--config", "models/mae_vit.json", "--import", PLUGIN, "--output-dir", str(out),
            *_sets("train.total_steps=4", "train.save_every=1", "train.keep_last=0",
                   'model.batch_transforms=[{"type": "poison", "batch_size": 8, "steps": [2]}]')]
    run_cli(*args, "--stop-at", "2", check=True)
    ck = out / "checkpoints"
    one, two = (torch.load(ck / f"step_{s:08d}" / "model.pt", weights_only=True) for s in (1, 2))
    assert all(torch.equal(one[k], two[k]) for k in one)  # step 2 left the weights (and EMA) as they were
    run_cli(*args, "--resume", check=True)  # the count survives a resume
    rows = read_metrics(out)
    assert [r["skipped_steps"] for r in rows] == [0, 1, 1, 1]
    assert rows[1]["loss"] != rows[1]["loss"] and all(r["loss"] == r["loss"] for r in rows[2:])  # NaN, then finite
    assert int(torch.load(ck / "step_00000004" / "trainer.pt", weights_only=True)["skipped_steps"]) == 1


def test_max_bad_steps_in_a_row_stop_with_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("pretrain.py", "--config", "models/mae_vit.json", "--import", PLUGIN, "--output-dir", str(out),
                   *_sets("train.total_steps=10", "train.save_every=2", "train.keep_last=1", "train.max_bad_steps=3",
                          'model.batch_transforms=[{"type": "poison", "batch_size": 8, "from_step": 4}]'))
    assert proc.returncode == 3, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "3 steps in a row (to step 6) had a non-finite loss" in lines[0]
    assert f"its last good checkpoint is {out / 'checkpoints' / 'step_00000002'} (step 2)" in lines[0]
    assert sorted(os.listdir(out / "checkpoints")) == ["latest", "step_00000002"]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    assert [r["skipped_steps"] for r in read_metrics(out)] == [0, 0, 0, 1, 2, 3]


@pytest.mark.distributed
def test_under_ddp_a_nan_on_one_rank_makes_every_rank_skip(tmp_path):
    sets = TINY_MAE + ["train.total_steps=3", "train.precision=fp32", "train.log_every=1", "train.save_every=0",
                       f'imports=["{PLUGIN}"]',
                       'model.batch_transforms=[{"type": "poison", "batch_size": 8, "steps": [2], "rank": 1}]']
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(REPO, "tests", "ddp_worker.py"), "models/mae_vit.json", str(tmp_path), *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = json.loads((tmp_path / "ranks.json").read_text())
    assert ranks["world"] == 2 and ranks["max_rank_diff"] == 0.0  # rank 0 did not update alone
    assert [r["skipped_steps"] for r in read_metrics(tmp_path)] == [0, 1, 1]
