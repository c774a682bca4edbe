"""scripts/benchmark.py: one entry point that routes to each benchmark and fails in one line on a bad name."""
import importlib
import json
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
from cli_utils import load_script  # noqa: E402
from shard_fixtures import tiny_recipe, write_shards  # noqa: E402


def _entry():
    return load_script("scripts/benchmark.py")


def test_list_names_every_benchmark_and_each_module_has_a_main(capsys):
    mod = _entry()
    assert mod.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name, (module, _) in mod.BENCHMARKS.items():
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name
        assert callable(importlib.import_module(f"m3i_modular.bench.{module}").main), module


def test_unknown_benchmark_is_one_line_exit_2(capsys):
    assert _entry().main(["dcnv4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown benchmark 'dcnv4'" in err[0] and "data" in err[0]


def test_data_routes_arguments_to_the_data_benchmark(tmp_path, capsys):
    shards = write_shards(tmp_path / "d", "b", 8, shard_size=4)
    (tmp_path / "r.json").write_text(json.dumps(tiny_recipe(shards, num_workers=0)))
    rc = _entry().main(["data", "--config", str(tmp_path / "r.json"), "--workers", "0", "--batches", "1",
                        "--steps", "1"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(report["loader_samples_per_s"]) == ["0"] and report["step_samples_per_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_dcnv3_without_a_gpu_is_one_line_exit_2(capsys):
    assert _entry().main(["dcnv3", "--repeats", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA GPU" in err[0]
