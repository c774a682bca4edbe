"""Elastic restart: under `torchrun --max-restarts 1`, killing one of two CPU workers restarts the job from its
last checkpoint (the command carries --resume from the start), and the losses equal an uninterrupted run's."""
import os
import signal
import subprocess
import sys
import time

import pytest

from cli_utils import REPO, TINY_MAE, read_metrics

PLUGIN = os.path.join(REPO, "tests", "plugins", "lifecycle_plugin.py")
STEPS = 10
SETS = TINY_MAE + [f"train.total_steps={STEPS}", "train.precision=fp32", "train.log_every=1", "train.save_every=2",
                   "train.device=cpu",  # two CPU workers (gloo), also on a machine with one GPU
                   "train.keep_last=2", "train.num_workers=0",
                   'model.batch_transforms=[{"type": "pid_file"}, {"type": "sleep", "seconds": 0.4}]']


def _torchrun(out, pids, restarts):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, M3I_TEST_PIDS=str(pids))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           f"--max-restarts={restarts}", os.path.join(REPO, "pretrain.py"), "--config", "models/mae_vit.json",
           *[a for s in SETS for a in ("--set", s)], "--import", PLUGIN, "--output-dir", str(out), "--resume"]
    # output to files: an unread pipe fills up and blocks the workers
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(out.parent / f"{out.name}.out", "w"),
                            stderr=open(out.parent / f"{out.name}.err", "w"), text=True,
                            start_new_session=True)  # a failed test stops the workers too (killpg)


def _wait(proc, out, timeout):
    proc.wait(timeout=timeout)
    return (out.parent / f"{out.name}.err").read_text()


def _rows(out):
    try:
        return read_metrics(out)
    except (OSError, ValueError):
        return []


@pytest.mark.distributed
@pytest.mark.timeout(600)
def test_killing_a_worker_restarts_from_the_checkpoint_with_equal_losses(tmp_path):
    straight, elastic = tmp_path / "straight", tmp_path / "elastic"
    for d in ("pids_a", "pids_b"):
        (tmp_path / d).mkdir()
    proc = _torchrun(elastic, tmp_path / "pids_b", restarts=1)
    t0 = time.time()
    while not (len(_rows(elastic)) >= 5 and (elastic / "checkpoints" / "step_00000004").exists()):
        if proc.poll() is not None or time.time() - t0 > 300:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(_wait(proc, elastic, 60)[-3000:])
        time.sleep(0.05)
    pid = int((tmp_path / "pids_b" / "rank1-0.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # a worker dies (OOM killer, a lost node)
    err = _wait(proc, elastic, 400)
    assert proc.returncode == 0, err[-4000:]
    assert (tmp_path / "pids_b" / "rank1-1.pid").exists(), "the job was not restarted"
    assert "resuming from step " in err
    done = _torchrun(straight, tmp_path / "pids_a", restarts=0)
    err = _wait(done, straight, 400)
    assert done.returncode == 0, err[-4000:]
    a, b = read_metrics(straight), read_metrics(elastic)
    assert [r["step"] for r in b] == list(range(1, STEPS + 1)) == [r["step"] for r in a]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
