"""--resume never loses progress: a missing or corrupt `latest` or a damaged newest checkpoint falls back to the
newest complete one with one warning; metrics.jsonl is trimmed to the resumed step; what killed saves left is
removed at the next start (and not before the checkpoint is checked); checkpoints without a manifest (older
runs) still resume; write failures are one line naming the path and the cause."""
import json
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

from cli_utils import REPO, TINY_MAE, read_metrics, run_cli
from m3i_modular.training import checkpoint as ckpt
from m3i_modular.errors import OutputError

SETS = TINY_MAE + ["train.log_every=1", "train.save_every=2", "train.keep_last=0", "train.precision=fp32",
                   "train.num_workers=0", "train.device=cpu"]


def _run(out, steps, *extra, check=True):
    sets = [a for s in SETS + [f"train.total_steps={steps}"] for a in ("--set", s)]
    return run_cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", str(out), *extra,
                   check=check)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 6-step run, and one stopped at step 4 (checkpoints at 2 and 4) to damage and resume."""
    root = tmp_path_factory.mktemp("runs")
    _run(root / "straight", 6)
    _run(root / "cut", 6, "--stop-at", "4")
    return root


def _copy(runs, tmp_path):
    import shutil
    shutil.copytree(runs / "cut", tmp_path / "cut")
    return tmp_path / "cut"


def _warnings(proc):
    return [x for x in proc.stderr.splitlines() if x.startswith("warning:")]


@pytest.mark.parametrize("damage", ["latest names a missing step", "latest is random bytes", "no latest",
                                    "newest model.pt truncated", "newest manifest missing a file"])
def test_resume_falls_back_to_the_newest_complete_checkpoint(runs, tmp_path, damage):
    out = _copy(runs, tmp_path)
    root = out / "checkpoints"
    if damage == "latest names a missing step":
        (root / "latest").write_text("step_00000009\n")
    elif damage == "latest is random bytes":
        (root / "latest").write_bytes(os.urandom(64))
    elif damage == "no latest":
        (root / "latest").unlink()
    elif damage == "newest model.pt truncated":
        data = (root / "step_00000004" / "model.pt").read_bytes()
        (root / "step_00000004" / "model.pt").write_bytes(data[:1000])
    else:
        (root / "step_00000004" / "optimizer.pt").unlink()
    want = 4 if damage.startswith(("latest", "no latest")) else 2
    proc = _run(out, 6, "--resume")
    warnings = _warnings(proc)
    assert len(warnings) == 1 and f"using the newest complete checkpoint, step_{want:08d}" in warnings[0]
    assert f"resuming from step {want} (" in proc.stderr
    a, b = read_metrics(runs / "straight"), read_metrics(out)
    assert [r["step"] for r in b] == list(range(1, 7))  # trimmed at the resumed step: no step twice
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_stale_temps_stay_on_bad_input_and_go_at_the_next_start(runs, tmp_path):
    out = _copy(runs, tmp_path)
    temp = out / "checkpoints" / ".step_00000006.tmp-killed"
    temp.mkdir()
    (temp / "model.pt").write_bytes(b"half a save")
    (out / "checkpoints" / ".tmp-latest").write_text("step_00000006")
    with open(out / "metrics.jsonl", "a") as f:  # rows a killed run logged after its last checkpoint
        f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n" + '{"step": 6, "lo')
    before = (out / "metrics.jsonl").read_text()
    bad = _run(out, 6, "--resume", "--set", "model.encoder.layers=3", check=False)
    assert bad.returncode == 2 and "is of another model" in bad.stderr
    assert temp.exists() and (out / "metrics.jsonl").read_text() == before  # nothing touched before the check
    _run(out, 4, "--resume")  # resumes at 4 == total: nothing to train, but the start tidies up
    assert not temp.exists() and not (out / "checkpoints" / ".tmp-latest").exists()
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4]


def test_a_checkpoint_without_manifest_still_resumes(runs, tmp_path):
    out = _copy(runs, tmp_path)
    for step in (2, 4):
        (out / "checkpoints" / f"step_{step:08d}" / "manifest.json").unlink()
    proc = _run(out, 6, "--resume")
    assert "resuming from step 4 (" in proc.stderr and not _warnings(proc)


def test_a_full_disk_while_saving_is_one_line_and_leaves_no_temp(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    root.mkdir()
    temp = root / ".step_00000001.tmp-x"
    temp.mkdir()
    os.symlink("/dev/full", temp / "model.pt")  # writing it fails with ENOSPC, as on a full disk
    monkeypatch.setattr(ckpt.tempfile, "mkdtemp", lambda **kw: str(temp))
    with pytest.raises(OutputError, match=r"step_00000001': No space left on device \(the disk is full: free space"):
        ckpt.save_checkpoint(str(root), 1, {"model": {"w": torch.zeros(1000)}}, config={}, meta={})
    assert not temp.exists() and not (root / "latest").exists()


def test_a_file_size_limit_while_saving_is_one_line(tmp_path):
    """ulimit -f: the run's own writes fail (EFBIG) once a file passes 64 KiB: the first checkpoint."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    out = tmp_path / "run"
    sets = [a for s in SETS + ["train.total_steps=2"] for a in ("--set", s)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True, preexec_fn=limit,
                          timeout=300)
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "File too large" in lines[0] and str(out / "checkpoints") in lines[0]
    assert os.listdir(out / "checkpoints") == []  # the partial save was removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_output_directory_is_one_line(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        proc = _run(out / "run", 2, check=False)
    finally:
        out.chmod(0o755)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: cannot write")
    assert "Permission denied" in proc.stderr
