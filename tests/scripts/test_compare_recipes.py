"""scripts/compare_recipes.py (m3i_modular/study/): a 2-recipe x 2-seed study at tiny size runs end to end
(pretraining, evaluations, per-cell results, table, chart) and a rerun recomputes nothing (asserted on markers
and logs, not timing); a removed result is recomputed alone; an evaluation that says "not applicable" is
recorded as n/a; entries, multi-stage step splits and the table's mean ± sd are checked on known values."""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from cli_utils import run_cli  # noqa: E402
from m3i_modular.study import cli as cr, plan, report  # noqa: E402  (scripts/compare_recipes.py calls cr.main)

TINY = ["train.num_workers=0", "train.precision=fp32", "train.save_every=0", "data.sources.0.num_samples=64",
        "model.encoder.layers=2", "model.encoder.dim=32", "model.embedding.dim=32"]
STUDY = ["--recipes", "mae_vit", "supervised_vit", "--seeds", "0", "1", "--steps", "2", "--batch-size", "8",
         "--evals", "linear", "knn", "--probe-train", "48", "--probe-val", "32", "--jobs", "2", "--threads", "1"]
STUDY += [a for s in TINY for a in ("--set", s)]


def _markers(out):
    found = {}
    for root, _, files in os.walk(os.path.join(out, "cells")):
        for f in files:
            if f == "study_done.json" or (os.path.basename(root) == "eval" and f.endswith(".json")) \
                    or f.endswith(".log") or f == "model.pt":
                p = os.path.join(root, f)
                found[os.path.relpath(p, out)] = (os.path.getmtime(p), os.path.getsize(p))
    return found


def test_tiny_study_runs_and_a_rerun_recomputes_nothing(tmp_path):
    out = str(tmp_path / "study")
    first = run_cli("scripts/compare_recipes.py", *STUDY, "--out", out, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "to do: 4 pretraining runs and 8 evaluations" in first.stdout
    assert len(os.listdir(os.path.join(out, "checks"))) == 4      # linear, knn x 2 recipes, asked once each
    for entry in ("mae_vit", "supervised_vit"):
        for seed in (0, 1):
            cell = json.load(open(os.path.join(out, "cells", entry, f"seed{seed}", "results.json")))
            assert cell["steps"] == 2 and cell["pretrain_wall_s"] > 0 and cell["pretrain_cpu_s"] > 0
            assert set(cell["metrics"]) == {"linear", "low_label", "knn"}
            assert all(0.0 <= v <= 1.0 for v in cell["metrics"].values())
    table = open(os.path.join(out, "results.md")).read()
    assert "| `mae_vit` |" in table and "| `supervised_vit` |" in table and "k-NN" in table
    rows = json.load(open(os.path.join(out, "results.json")))["rows"]
    assert rows["mae_vit"]["metrics"]["linear"]["n"] == 2
    before = _markers(out)
    assert sum(k.endswith("study_done.json") for k in before) == 4
    assert sum("/eval/" in k for k in before) == 8

    again = run_cli("scripts/compare_recipes.py", *STUDY, "--out", out, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "to do: 0 pretraining runs and 0 evaluations (done already: 4 and 8)" in again.stdout
    assert _markers(out) == before          # no marker, log or checkpoint was touched
    assert open(os.path.join(out, "results.md")).read() == table

    # a lost result is recomputed alone
    os.remove(os.path.join(out, "cells", "supervised_vit", "seed1", "eval", "knn.json"))
    third = run_cli("scripts/compare_recipes.py", *STUDY, "--out", out, timeout=900)
    assert third.returncode == 0 and "to do: 0 pretraining runs and 1 evaluations" in third.stdout
    assert "[1/1] supervised_vit seed 1 knn" in third.stdout
    after = _markers(out)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"cells/supervised_vit/seed1/eval/knn.json", "cells/supervised_vit/seed1/logs/knn.log"}


def test_not_applicable_is_recorded_and_missing_entry_points_are_skipped(tmp_path, monkeypatch, capsys):
    """Applicability is the entry point's own --check, asked once per (evaluation, recipe) and kept."""
    fake = tmp_path / "fake_eval.py"
    fake.write_text("import json, sys\nassert '--check' in sys.argv\n"
                    "print(json.dumps({'eval': 'fake', 'applicable': False, 'reason': 'no text tower'}))\n")
    evals = [plan.Evaluation("fake", str(fake), {"fake": "fake_acc"}, lambda p, d: []),
             plan.Evaluation("ghost", "finetune/no_such_entry_point.py", {"ghost": "ghost_acc"}, lambda p, d: [])]
    monkeypatch.setattr(cr, "EVALUATIONS", evals)
    monkeypatch.setattr(cr, "EVAL_BY_NAME", {e.name: e for e in evals})
    out = str(tmp_path / "s")
    args = ["--recipes", "random_init", "--seeds", "0", "--evals", "fake", "ghost", "--out", out, "--jobs", "1"]
    assert cr.main(args) == 0
    cell = json.load(open(os.path.join(out, "cells", "random_init", "seed0", "results.json")))
    assert cell["evals"]["fake"] == {"skipped": "n/a: no text tower"}
    assert [f for f in os.listdir(os.path.join(out, "checks")) if f.startswith("fake__")]
    text = capsys.readouterr().out
    assert "ghost (missing: finetune/no_such_entry_point.py does not exist yet)" in text
    assert "fake (n/a: no text tower)" in text
    table = open(os.path.join(out, "results.md")).read()
    assert "| `random_init` | – | n/a |" in table and "No result yet (entry point missing or not run): ghost" in table
    fake.write_text("import sys\nsys.exit(3)\n")  # the kept answer is used: the check is not asked again
    assert cr.main(args) == 0 and "[1/" not in capsys.readouterr().out


def test_entries_and_stage_steps():
    e = plan.parse_entry("mae_vit>supervised_vit@0.5")
    assert [n for n, _ in e.stages] == ["mae_vit", "supervised_vit"] and e.stage_steps(300) == [150, 150]
    assert e.stage_steps(301) == [150, 151]                            # the total is kept exactly
    three = plan.parse_entry("mae_vit>byol_vit>supervised_vit@0.2,0.7")
    assert three.stage_steps(100) == [20, 50, 30]
    assert plan.parse_entry("mae_vit>supervised_vit").stage_steps(10) == [5, 5]
    assert plan.parse_entry("random_init").random_init.endswith("supervised_vit.json")
    assert plan.parse_entry("random_init:mae_vit").random_init.endswith("mae_vit.json")
    for bad in ("mae_vit>supervised_vit@1.2", "mae_vit>supervised_vit@0.5,0.6", "no_such_recipe", "mae_vit>"):
        with pytest.raises(ValueError):
            plan.parse_entry(bad)
    with pytest.raises(ValueError):
        plan.parse_entry("mae_vit>supervised_vit@0.01").stage_steps(10)  # a stage with no step
    assert plan.parse_entry("mae_vit>supervised_vit@0.5").slug == "mae_vit_then_supervised_vit_at_0.5"


def test_table_mean_sd_and_the_entry_points_keys():
    assert report.mean_sd([0.2, 0.4]) == pytest.approx((0.3, 0.1414213562))
    assert report.mean_sd([0.5]) == (0.5, 0.0)
    # the columns read the keys the entry points write (finetune/run_*.py docstrings)
    keys = {k for ev in plan.EVALUATIONS for k in ev.columns.values()}
    assert keys == {"linear_acc", "low_label_acc", "knn_acc", "finetune_top1", "miou", "fg_miou", "zero_shot_acc",
                    "i2t_r1"}
    for ev in plan.EVALUATIONS:
        doc = open(os.path.join(ROOT, ev.script)).read()
        assert all(k in doc for k in ev.columns.values()), ev.name
    rows = {"a": {"metrics": {"linear": {"mean": 0.25, "sd": 0.05, "n": 3}, "knn": "n/a"},
                  "pretrain_wall_s": {"mean": 90.0, "sd": 6.0, "n": 3}}}
    md = report.markdown(rows, [plan.EVAL_BY_NAME["linear"], plan.EVAL_BY_NAME["knn"]], "h")
    assert "| `a` | 1.5 ± 0.1 | 25.0 ± 5.0 | n/a |" in md


def test_plan_and_user_mistakes(tmp_path):
    shown = run_cli("scripts/compare_recipes.py", "--study", "m3i", "--out", str(tmp_path / "p"), "--plan")
    steps = plan.PRESETS["m3i"]["protocol"]["steps"]
    assert shown.returncode == 0 and "8 entries x 3 seeds = 24 cells" in shown.stdout
    assert f"mae_vit {steps // 2} steps then supervised_vit {steps - steps // 2} steps" in shown.stdout
    assert "to do: 24 pretraining runs" in shown.stdout and "estimate:" in shown.stdout
    x10 = run_cli("scripts/compare_recipes.py", "--study", "m3i", "--steps-mult", "10", "--out",
                  str(tmp_path / "p"), "--plan")
    assert f"pretraining {10 * steps} steps x batch" in x10.stdout
    for bad in (["--recipes", "nope"], ["--recipes", "mae_vit", "--evals", "bogus"], ["--study", "none.json"]):
        p = run_cli("scripts/compare_recipes.py", *bad, "--out", str(tmp_path / "b"))
        assert p.returncode == 2 and p.stderr.startswith("error:"), p.stderr


def test_data_option_replaces_the_pretraining_source_and_feeds_the_evaluations(tmp_path):
    plugin = os.path.join(ROOT, "tests", "finetune", "solid_colours.py")
    train = '{"type": "solid_colours", "num_samples": 64}'
    val = '{"type": "solid_colours", "split": "val", "num_samples": 32}'
    out = str(tmp_path / "own")
    args = ["--recipes", "mae_vit", "--seeds", "0", "--steps", "2", "--batch-size", "8", "--evals", "finetune",
            "--ft-steps", "2", "--ft-batch", "8", "--import", plugin, "--data", train, val, "--jobs", "1",
            "--threads", "1", "--out", out] + [a for s in TINY for a in ("--set", s)]
    proc = run_cli("scripts/compare_recipes.py", *args, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cell = os.path.join(out, "cells", "mae_vit", "seed0")
    pre = json.load(open(os.path.join(cell, "pretrain", "config.json")))
    assert [s["type"] for s in pre["data"]["sources"]] == ["solid_colours"]
    ft = json.load(open(os.path.join(cell, "finetune_run", "finetune_recipe.json")))
    assert ft["data"]["sources"][0]["type"] == "solid_colours"
    res = json.load(open(os.path.join(cell, "results.json")))
    assert res["metrics"]["finetune"] >= 0.0 and res["evals"]["finetune"]["metrics"]["num_classes"] == 4


def test_a_study_directory_keeps_one_protocol(tmp_path, monkeypatch):
    monkeypatch.setattr(cr.Study, "run", lambda self: 0)       # only the bookkeeping, no work
    monkeypatch.setattr(cr, "report", lambda *a, **k: None)
    out = str(tmp_path / "s")
    base = ["--recipes", "random_init", "--evals", "linear", "--out", out, "--jobs", "1"]
    assert cr.main(base + ["--steps", "10"]) == 0
    assert cr.main(base + ["--steps", "10", "--seeds", "1"]) == 0          # more seeds: the same study
    assert json.load(open(os.path.join(out, "study.json")))["seeds"] == [0, 1]
    assert cr.main(base + ["--steps", "20"]) == 2                          # other steps: refused
    assert cr.main(base + ["--steps", "10", "--ft-args", "--lr 1e-3"]) == 2


def test_pipeline_entry_splits_the_steps_and_inits_from_the_first_stage(tmp_path):
    out = str(tmp_path / "p")
    proc = run_cli("scripts/compare_recipes.py", "--recipes", "mae_vit>supervised_vit@0.25", "--seeds", "0",
                   "--steps", "4", "--batch-size", "8", "--evals", "--jobs", "1", "--threads", "1", "--out", out,
                   *[a for s in TINY for a in ("--set", s)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cell = json.load(open(os.path.join(out, "cells", "mae_vit_then_supervised_vit_at_0.25", "seed0",
                                       "results.json")))
    first, second = cell["stages"]
    assert (first["recipe"], first["steps"], second["recipe"], second["steps"]) == ("mae_vit", 1, "supervised_vit", 3)
    assert second["init_from"].endswith("stage1_mae_vit")
    log = open(os.path.join(out, "cells", "mae_vit_then_supervised_vit_at_0.25", "seed0", "logs",
                            "pretrain2.log")).read()
    assert "init-from" in log and "loaded 28 tensors" in log   # the tower came from stage 1
