"""SIGINT / SIGTERM finish the step, save, print one line with the checkpoint and the resume command, and exit
130 / 143; a second Ctrl-C exits at once; the resumed run equals an uninterrupted one. Saves by time."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

from cli_utils import REPO, TINY_MAE, read_metrics, run_cli

PLUGIN = os.path.join(REPO, "tests", "plugins", "lifecycle_plugin.py")
STEPS = 12
SETS = TINY_MAE + ["train.log_every=1", "train.save_every=0", "train.num_workers=2", "train.precision=fp32",
                   f"train.total_steps={STEPS}"]


def _args(out, *extra, sleep=0.3):
    sets = SETS + [f'model.batch_transforms=[{{"type": "sleep", "seconds": {sleep}}}]']
    return ["--config", "models/mae_vit.json", *[a for s in sets for a in ("--set", s)], "--import", PLUGIN,
            "--output-dir", str(out), *extra]


def _start(out, *extra, sleep=0.3):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, os.path.join(REPO, "pretrain.py"), *_args(out, *extra, sleep=sleep)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(out, step, proc, timeout=300):
    path = os.path.join(out, "metrics.jsonl")
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if os.path.exists(path):
            with open(path) as f:
                rows = [json.loads(line) for line in f if line.strip()]
            if rows and rows[-1]["step"] >= step:
                return rows[-1]["step"]
        time.sleep(0.05)
    raise AssertionError("the run did not reach the step in time")


def _interrupt(tmp_path, sig, name):
    out = tmp_path / name
    proc = _start(out)
    seen = _wait_for_step(out, 3, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    lines = [x for x in err.strip().splitlines() if x.startswith("interrupted")]
    assert len(lines) == 1, err
    latest = (out / "checkpoints" / "latest").read_text().strip()
    step = int(latest.split("_")[1])
    assert seen <= step < STEPS and "Traceback" not in err
    assert f"at step {step}: saved {out / 'checkpoints' / latest}; resume with: python pretrain.py" in lines[0]
    assert lines[0].endswith(f"--output-dir {out} --resume")
    return proc.returncode, out, step


def test_sigint_saves_and_resumes_to_the_uninterrupted_losses(tmp_path):
    rc, out, step = _interrupt(tmp_path, signal.SIGINT, "int")
    assert rc == 130
    proc = run_cli("pretrain.py", *_args(out, "--resume"), check=True)
    assert f"resuming from step {step} (" in proc.stderr
    straight = tmp_path / "straight"
    run_cli("pretrain.py", *_args(straight), check=True)
    a, b = read_metrics(straight), read_metrics(out)
    assert [r["step"] for r in b] == list(range(1, STEPS + 1)) == [r["step"] for r in a]  # trimmed, no repeats
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    sa = torch.load(straight / "checkpoints" / f"step_{STEPS:08d}" / "model.pt", weights_only=True)
    sb = torch.load(out / "checkpoints" / f"step_{STEPS:08d}" / "model.pt", weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sigterm_saves_and_exits_143(tmp_path):
    rc, out, step = _interrupt(tmp_path, signal.SIGTERM, "term")
    assert rc == 143
    assert max(r["step"] for r in read_metrics(out)) == step  # the step it stopped after was logged and saved


def test_a_second_ctrl_c_exits_at_once(tmp_path):
    out = tmp_path / "twice"
    proc = _start(out, sleep=10)  # long steps, so "at once" is told apart from "after the step" on a loaded machine
    _wait_for_step(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)  # the step still sleeps for seconds: the second Ctrl-C does not wait for it
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.time() - t0 < 7, err  # the step had ~9.7 s left
    assert max(r["step"] for r in read_metrics(out)) == 1  # step 2 was not finished
    assert err.strip().splitlines()[-1] == "interrupted again: exited at once, without a checkpoint"
    assert not (out / "checkpoints").exists() or not [d for d in os.listdir(out / "checkpoints") if d.startswith(".")]


def test_saves_by_time(tmp_path):
    out = tmp_path / "timed"
    sets = TINY_MAE + ["train.total_steps=4", "train.save_every=0", "train.keep_last=0",
                       "train.save_every_minutes=0.0001"]
    run_cli("pretrain.py", "--config", "models/mae_vit.json", *[a for s in sets for a in ("--set", s)],
            "--output-dir", str(out), check=True)
    assert sorted(os.listdir(out / "checkpoints")) == ["latest"] + [f"step_{s:08d}" for s in range(1, 5)]
