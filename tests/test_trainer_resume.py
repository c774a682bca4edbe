"""Checkpoints and exact resume through the real CLI."""
import os

import torch

from cli_utils import TINY_MAE, read_metrics

RESUME = TINY_MAE + ["model.encoder.drop_path=0.2", "train.num_workers=2", "train.precision=bf16",
                     "train.grad_accum=2", "train.log_every=1", "train.save_every=4", "train.keep_last=3"]


def _run(cli, out, steps, *extra):
    sets = [a for s in RESUME + [f"train.total_steps={steps}"] for a in ("--set", s)]
    return cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", str(out), *extra,
               check=True)


def test_resume_is_bit_equal(tmp_path, cli):
    straight, split = tmp_path / "straight", tmp_path / "split"
    _run(cli, straight, 8)
    _run(cli, split, 8, "--stop-at", "3")  # interrupted mid-run, between two saves (save_every 4)
    assert (split / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    proc = _run(cli, split, 8, "--resume")
    assert "resuming from step 3 (" in proc.stderr and "step_00000003" in proc.stderr
    a, b = read_metrics(straight), read_metrics(split)
    assert [r["step"] for r in a] == list(range(1, 9)) == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert ra["loss"] == rb["loss"] and ra["mae_loss"] == rb["mae_loss"], (ra, rb)
    sa = torch.load(straight / "checkpoints" / "step_00000008" / "model.pt", weights_only=True)
    sb = torch.load(split / "checkpoints" / "step_00000008" / "model.pt", weights_only=True)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_checkpoint_layout_latest_and_pruning(tmp_path, cli):
    out = tmp_path / "run"
    sets = [a for s in TINY_MAE + ["train.total_steps=6", "train.save_every=2", "train.keep_last=2"]
            for a in ("--set", s)]
    cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", str(out), check=True)
    root = out / "checkpoints"
    assert sorted(p for p in os.listdir(root) if p.startswith("step_")) == ["step_00000004", "step_00000006"]
    assert (root / "latest").read_text().strip() == "step_00000006"
    ck = root / "step_00000006"
    assert {"model.pt", "optimizer.pt", "trainer.pt", "config.json", "meta.json"} <= set(os.listdir(ck))
    state = torch.load(ck / "trainer.pt", weights_only=True)
    assert int(state["step"]) == 6 and int(state["consumed"]) == 6 * 8 and state["rng"].dtype == torch.uint8
    assert not [p for p in os.listdir(root) if ".tmp-" in p]
    # A second run into the same directory without --resume refuses and leaves the files alone.
    before = (out / "metrics.jsonl").read_text()
    proc = cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", str(out))
    assert proc.returncode == 2 and "--resume" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (out / "metrics.jsonl").read_text() == before


def test_resume_without_checkpoint_starts_fresh(tmp_path, cli):
    out = tmp_path / "fresh"
    sets = [a for s in TINY_MAE + ["train.total_steps=2"] for a in ("--set", s)]
    proc = cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", str(out), "--resume",
               check=True)
    assert "resuming from" not in proc.stderr and "no checkpoint in" in proc.stderr and "starting fresh" in proc.stderr
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
