"""finetune/run_linear_probe.py and run_knn.py: the random-init baseline on synthetic_shapes stays far from
solving it, results land in JSON, and user mistakes are one line with exit code 2."""
import json
import os
import sys

import pytest

from tiny_recipe import REPO, RECIPE  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "finetune"))
import run_knn  # noqa: E402
import run_linear_probe  # noqa: E402

SPLITS = ["--train-samples", "300", "--val-samples", "200"]


def test_random_init_probe_on_synthetic_shapes_stays_at_or_below_60_percent(tmp_path, capsys):
    # The recipe's own tiny ViT (dim 64, 4 layers, 32 px) at random init: shape is the label, colour, size,
    # position and texture are nuisances, so frozen random features must not separate the classes.
    out = tmp_path / "probe.json"
    assert run_linear_probe.main(["--random-init", "--config", RECIPE, "--output", str(out),
                                  "--l2", "1e-1", "1e-3", "1e-5", "--max-iter", "100"] + SPLITS) == 0
    probe = json.loads(out.read_text())
    assert probe["model"] == "random_init" and probe["n_train"] == 300 and probe["n_test"] == 200
    assert probe["num_classes"] == 10 and probe["dim"] == 64 and probe["primary"] == "linear_acc"
    assert {k for k in probe if k.startswith("linear_val_acc_l2_")} == {
        "linear_val_acc_l2_0.1", "linear_val_acc_l2_0.001", "linear_val_acc_l2_1e-05"}
    assert probe["linear_acc"] <= 0.60 and probe["low_label_acc"] <= 0.60
    assert probe["low_label_per_class"] == 10 and probe["low_label_n_train"] == 100  # 10 of each of 10 classes
    assert all(not isinstance(v, (dict, list)) for v in probe.values())  # one flat object
    out_knn = tmp_path / "knn.json"
    assert run_knn.main(["--random-init", "--config", RECIPE, "--output", str(out_knn), "--k", "10", "20"]
                        + SPLITS) == 0
    knn = json.loads(out_knn.read_text())
    assert knn["knn_k"] == 10 and knn["knn_acc"] == knn["knn_acc_k10"]
    assert max(knn["knn_acc_k10"], knn["knn_acc_k20"]) <= 0.60
    with capsys.disabled():
        print(f"\nrandom-init tiny ViT on synthetic_shapes (300 train / 200 val): linear probe "
              f"{probe['linear_acc']:.3f} (l2 {probe['linear_l2']:g}), 10-per-class probe "
              f"{probe['low_label_acc']:.3f}, k-NN k=10 {knn['knn_acc_k10']:.3f}, k=20 {knn['knn_acc_k20']:.3f}, "
              f"chance {probe['chance']:.3f}")


def test_cli_mistakes_are_one_line_exit_2(tmp_path, capsys):
    cases = [(["--random-init"], "--config"),
             (["--checkpoint", str(tmp_path)], "no checkpoint at"),
             (["--random-init", "--config", RECIPE, "--eval-split", "tset"], "unknown split 'tset'"),
             (["--random-init", "--config", RECIPE, "--set", "model.encodr.dim=3"], "no key 'encodr'"),
             (["--random-init", "--config", RECIPE, "--train-samples", "0"], "--train-samples"),
             (["--random-init", "--config", RECIPE, "--val-fraction", "1.5"], "--val-fraction"),
             (["--random-init", "--config", RECIPE, "--low-label-per-class", "-1"], "--low-label-per-class"),
             (["--random-init", "--config", RECIPE, "--train-data", str(tmp_path / "nope")], "no such file"),
             (["--checkpoint", str(tmp_path), "--config", RECIPE], "--config goes with --random-init")]
    for argv, what in cases:
        out = tmp_path / "never.json"
        assert run_linear_probe.main(argv + ["--output", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:") and what in err, err
        assert not out.exists()
    assert run_knn.main(["--random-init", "--config", RECIPE, "--k", "0"]) == 2
    assert "--k must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse's own mistakes: one line too, exit code 2
        run_knn.main(["--random-init", "--config", RECIPE, "--train-samples", "x"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "invalid int value" in err, err


def test_labels_withheld_from_pretraining_are_still_probed(tmp_path):
    # label_fraction is a pre-training knob: the probe evaluates on every labelled sample of the split, so
    # recipes with different fractions are compared on the same samples
    out = tmp_path / "knn.json"
    assert run_knn.main(["--random-init", "--config", RECIPE, "--output", str(out), "--k", "5",
                         "--set", "data.sources.0.label_fraction=0.3"] + SPLITS) == 0
    knn = json.loads(out.read_text())
    assert knn["n_train"] == 300 and knn["n_test"] == 200
