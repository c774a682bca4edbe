"""What a new user meets first: precision "auto" fits the machine (and says why), --help and recipe mistakes
answer without importing torch, the run says where it writes, in which precision, how big it is and where it
starts before its first step, and the loss is logged at step 1."""
import json
import os
import subprocess
import sys

import pytest

from cli_utils import REPO, TINY_MAE, read_metrics, run_cli
from m3i_modular.runtime.precision import cpu_flags, resolve_precision


@pytest.mark.parametrize("flags, want", [({"sse4_2", "avx2", "fma"}, "fp32"), ({"avx512f", "avx512_bf16"}, "fp32"),
                                         ({"amx_tile", "amx_bf16"}, "bf16"), (set(), "fp32")])
def test_auto_is_bf16_only_where_the_cpu_computes_it(flags, want):
    got, reason = resolve_precision("auto", "cpu", flags=flags)
    assert got == want and reason.startswith("auto: ")
    assert ("amx_bf16" in reason) == (want == "bf16")


def test_auto_on_cuda_and_explicit_values():
    assert resolve_precision("auto", "cuda", cuda_bf16=True, cuda_name="H100")[0] == "bf16"
    assert resolve_precision("auto", "cuda", cuda_bf16=False, cuda_name="V100") == ("fp32", "auto: V100 has no "
                                                                                      "native bf16")
    assert resolve_precision("bf16", "cpu", flags=set()) == ("bf16", "set in the recipe")  # explicit wins


def test_cpu_flags_from_cpuinfo_and_the_environment(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    monkeypatch.delenv("M3I_CPU_FLAGS", raising=False)
    assert cpu_flags(str(info)) == {"fpu", "sse", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == set()
    monkeypatch.setenv("M3I_CPU_FLAGS", "avx2 fma")
    assert cpu_flags(str(info)) == {"avx2", "fma"}


def _no_torch(argv):
    code = ("import sys\nfrom m3i_modular.cli import main\ntry:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    rc = e.code\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=120)
    return proc.stdout.strip().splitlines()[-1], proc.stderr


@pytest.mark.parametrize("argv, err", [
    (["--help"], ""),
    (["--config", "models/nope.json"], "no such recipe file"),
    (["--config", "models/mae_vit.json", "--set", "train.total_step=3"], "did you mean 'total_steps'"),
    (["--config", "models/mae_vit.json", "--set", "train.batch_size=0"], "batch_size must be >= 1"),
    (["--config", "models/mae_vit.json", "--stop-at", "0"], "must be a step >= 1")])
def test_help_and_early_mistakes_answer_without_torch(argv, err):
    last, stderr = _no_torch(argv)
    assert last == f"NO-TORCH {0 if argv == ['--help'] else 2}", stderr
    assert err in stderr


def test_start_up_lines_come_before_the_first_step_and_step_1_is_logged(tmp_path):
    out = tmp_path / "run"
    sets = TINY_MAE + ["train.total_steps=3", "train.log_every=25", "train.precision=auto", "train.device=cpu"]
    proc = run_cli("pretrain.py", "--config", "models/mae_vit.json", *[a for s in sets for a in ("--set", s)],
                   "--output-dir", str(out), env={"M3I_CPU_FLAGS": "sse avx2"}, check=True)
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == f"run directory: {out}"
    assert lines[1].startswith("precision: fp32 (auto: this CPU has no bf16 units")
    assert lines[2].startswith("threads: ")
    assert lines[3].startswith("parameters: embedding 1,568, encoder 25,472, objectives.mae ")
    assert lines[4] == "starting at step 0 of 3"
    assert [r["step"] for r in read_metrics(out)] == [1, 3]  # step 1, then every 25 steps and the last
    meta = json.loads((out / "checkpoints" / "step_00000003" / "meta.json").read_text())
    assert meta["precision"] == "fp32" and meta["precision_reason"].startswith("auto: this CPU has no bf16")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["precision"] == "auto"  # the recipe as written; the resolved choice is in meta.json
