"""scripts/benchmark.py vit | bert | m3i at tiny sizes: each times its contestants in one process and writes a
ratio per contestant to its CSV. The TencentPretrain side of `bert` needs a checkout (TENCENTPRETRAIN=PATH);
without one only our side runs."""
import csv
import os

import pytest

from cli_utils import load_script

TP = os.environ.get("TENCENTPRETRAIN")


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_vit_against_timm_tiny(tmp_path, capsys):
    pytest.importorskip("timm")
    out = tmp_path / "vit.csv"
    rc = load_script("scripts/benchmark.py").main([
        "vit", "--image-size", "32", "--patch", "8", "--dim", "32", "--depth", "1", "--heads", "2", "--classes",
        "10", "--batch", "2", "--repeats", "2", "--warmup", "1", "--variant", "fused:optim.fused=true",
        "--csv", str(out)])
    assert rc == 0
    rows = _rows(out)
    assert [r["contestant"] for r in rows] == ["timm", "ours", "ours+fused"]
    assert float(rows[0]["ratio_vs_reference"]) == 1.0 and all(float(r["median"]) > 0 for r in rows)
    assert rows[1]["flops_per_step"] == rows[0]["flops_per_step"] and float(rows[1]["flops_per_step"]) > 0
    assert "img/s" in capsys.readouterr().out


def test_m3i_time_per_flop_against_mae_tiny(tmp_path, capsys):
    out = tmp_path / "m3i.csv"
    rc = load_script("scripts/benchmark.py").main([
        "m3i", "--size", "cpu", "--batch", "4", "--repeats", "1", "--warmup", "1", "--set",
        "model.encoder.layers=1", "--csv", str(out)])
    assert rc == 0
    assert [r["contestant"] for r in _rows(out)] == ["mae", "m3i"]
    assert "M3I time per FLOP / MAE time per FLOP:" in capsys.readouterr().out


def test_bert_ours_alone_tiny(tmp_path):
    out = tmp_path / "bert.csv"
    rc = load_script("scripts/benchmark.py").main([
        "bert", "--no-reference", "--layers", "1", "--dim", "32", "--heads", "2", "--vocab", "100", "--seq", "16",
        "--batch", "2", "--repeats", "1", "--warmup", "1", "--csv", str(out)])
    assert rc == 0 and [r["contestant"] for r in _rows(out)] == ["ours"]


def test_bert_needs_a_checkout_or_no_reference(capsys):
    with pytest.raises(SystemExit) as e:
        load_script("scripts/benchmark.py").main(["bert", "--repeats", "1"])
    assert e.value.code == 2 and "--tencentpretrain" in capsys.readouterr().err


@pytest.mark.skipif(not TP, reason="set TENCENTPRETRAIN to a TencentPretrain checkout (never in this repository)")
def test_bert_against_tencentpretrain_tiny(tmp_path):
    out = tmp_path / "bert.csv"
    rc = load_script("scripts/benchmark.py").main([
        "bert", "--tencentpretrain", TP, "--layers", "1", "--dim", "32", "--heads", "2", "--seq", "16",
        "--batch", "2", "--repeats", "1", "--warmup", "1", "--csv", str(out)])
    assert rc == 0 and [r["contestant"] for r in _rows(out)] == ["tencentpretrain", "ours"]
