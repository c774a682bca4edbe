"""Training monitors in metrics.jsonl: k-NN accuracy every N steps (equal to the offline k-NN CLI on the
final checkpoint), the collapse metrics of the gaussian target every step, and the "eval" section's checks."""
import json
import os
import sys

from m3i_modular.cli import main as pretrain_main

from tiny_recipe import REPO, RECIPE, tiny_args  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "finetune"))
import run_knn  # noqa: E402

EVAL = {"knn_every": 2, "knn_train": 60, "knn_val": 40, "k": 5}


def test_monitors_land_in_metrics_jsonl_and_match_the_offline_knn(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--config", RECIPE, "--output-dir", str(out)] + tiny_args("train.total_steps=5", f"eval={json.dumps(EVAL)}")
    assert pretrain_main(argv) == 0
    recs = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5]
    assert [r["step"] for r in recs if "knn_acc" in r] == [2, 4, 5]  # every 2 steps and the last
    for r in recs:
        assert 0.0 < r["mae_target_std"] and 1.0 <= r["mae_pred_rank"] <= 48  # pixel targets: 4*4*3 dims
    for r in recs[1::2]:
        assert 0.0 <= r["knn_acc"] <= 1.0
    capsys.readouterr()
    res = tmp_path / "knn.json"
    assert run_knn.main(["--checkpoint", str(out), "--train-samples", "60", "--val-samples", "40", "--k", "5",
                         "--output", str(res)]) == 0
    offline = json.loads(res.read_text())
    assert offline["step"] == 5 and offline["n_train"] == 60 and offline["n_test"] == 40
    assert abs(offline["knn_acc_k5"] - recs[-1]["knn_acc"]) < 1e-6 and offline["knn_acc"] == offline["knn_acc_k5"]


def test_eval_section_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    cases = [({"knn_evry": 2}, "eval.knn_evry", "did you mean 'knn_every'"),
             ({"knn_every": 3, "k": 0}, "eval.k", ">= 1"),
             ({"knn_every": 3}, "eval.knn_every", "multiple of train.log_every"),
             ({"knn_every": 2, "source": 4}, "data.sources", "no data source 4")]
    for i, (section, where, what) in enumerate(cases):
        out = tmp_path / f"run{i}"
        log_every = "train.log_every=2"
        argv = ["--config", RECIPE, "--output-dir", str(out)] + tiny_args(log_every, f"eval={json.dumps(section)}")
        assert pretrain_main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and where in err and what in err, err
        assert not out.exists()
