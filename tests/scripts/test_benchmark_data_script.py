"""m3i_modular/bench/data.py (scripts/benchmark.py data) end to end on a tiny shard recipe: the three numbers
come out and make sense."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
from shard_fixtures import tiny_recipe, write_shards  # noqa: E402

from m3i_modular.bench import data as bench_data  # noqa: E402


def _script():
    return bench_data


def test_benchmark_reports_loader_rates_demand_and_share(tmp_path, capsys):
    shards = write_shards(tmp_path / "d", "b", 12, shard_size=5)
    (tmp_path / "r.json").write_text(json.dumps(tiny_recipe(shards, num_workers=0)))
    rc = _script().main(["--config", str(tmp_path / "r.json"), "--workers", "0", "1", "--batches", "2",
                         "--steps", "2"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["loader_samples_per_s"]) == {"0", "1"}
    assert all(r > 0 for r in report["loader_samples_per_s"].values()) and report["step_samples_per_s"] > 0
    assert 0.0 <= report["data_time_share"] <= 1.0 and report["batch_size"] == 4


def test_benchmark_bad_recipe_is_one_line_exit_2(tmp_path, capsys):
    recipe = tiny_recipe(str(tmp_path / "missing-{000..001}.tar"))
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    assert _script().main(["--config", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
