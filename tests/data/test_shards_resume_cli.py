"""pretrain.py on shards: exact resume with 2 workers, skips in metrics.jsonl, the max_skip_share stop."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: reach the helper
from shard_fixtures import tiny_recipe, write_shards  # noqa: E402

import m3i_modular.training.trainer as trainer_mod  # noqa: E402
from m3i_modular.cli import main  # noqa: E402

REAL_MOVE = trainer_mod.move


def _run(tmp_path, monkeypatch, recipe, out, *extra):
    """Run pretrain.py in-process; return the sample keys of every batch the trainer consumed."""
    path = tmp_path / f"{os.path.basename(out)}.json"
    path.write_text(json.dumps(recipe))
    seen = []

    def recording_move(batch, device):  # runs in the main process, on batches the trainer actually uses
        if isinstance(batch, dict) and "key" in batch:  # the top-level batch (move also recurses)
            seen.append(list(batch["key"]))
        return REAL_MOVE(batch, device)

    monkeypatch.setattr(trainer_mod, "move", recording_move)
    rc = main(["--config", str(path), "--output-dir", str(out), *extra])
    return rc, seen


@pytest.mark.timeout(240)
def test_resume_at_step_k_sees_the_uninterrupted_keys_with_2_workers(tmp_path, monkeypatch):
    shards = write_shards(tmp_path / "d", "r", 30, shard_size=7)
    n, k = 6, 3
    rc, full = _run(tmp_path, monkeypatch, tiny_recipe(shards, total_steps=n, save_every=k), tmp_path / "full")
    assert rc == 0 and len(full) == n
    rc, first = _run(tmp_path, monkeypatch, tiny_recipe(shards, total_steps=k, save_every=k), tmp_path / "cut")
    assert rc == 0 and first == full[:k]
    rc, rest = _run(tmp_path, monkeypatch, tiny_recipe(shards, total_steps=n, save_every=k), tmp_path / "cut",
                    "--resume")
    assert rc == 0
    assert rest == full[k:]  # steps k+1..n: the same samples, in the same order, as without the stop
    assert all(key.startswith("r") for b in full for key in b) and all(len(b) == 4 for b in full)


@pytest.mark.timeout(240)
def test_skips_reach_metrics_and_too_many_stop_the_run_naming_the_shard(tmp_path, monkeypatch, capsys):
    shards = write_shards(tmp_path / "d", "s", 20, shard_size=10, bad={3, 16})
    recipe = tiny_recipe(shards, total_steps=5, save_every=0, num_workers=0)  # 5 x 4 = one epoch of 20
    rc, _ = _run(tmp_path, monkeypatch, recipe, tmp_path / "ok")
    assert rc == 0
    records = [json.loads(line) for line in (tmp_path / "ok" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["data_skipped"] for r in records) == 2 == records[-1]["data_skipped_total"]
    recipe["data"]["max_skip_share"] = 0.0
    rc, _ = _run(tmp_path, monkeypatch, recipe, tmp_path / "stop")
    err = capsys.readouterr().err
    assert rc == 2
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "max_skip_share" in line[0] and os.path.join("d", "s-00") in line[0]
