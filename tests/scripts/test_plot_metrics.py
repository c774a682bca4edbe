"""scripts/plot_metrics.py (m3i_modular/study/plot.py): the curves of two runs land in one PNG (panels for
loss, per-objective losses, lr and k-NN); matplotlib missing, a missing run or a bad --output are one line
with exit code 2."""
import builtins
import json

import pytest

from cli_utils import load_script
from m3i_modular.study import plot

plot_metrics = load_script("scripts/plot_metrics.py")  # the command line; the curves' logic is study/plot.py


def _run(folder, objectives, knn=False, steps=12):
    folder.mkdir(parents=True)
    with open(folder / "metrics.jsonl", "w") as f:
        for s in range(1, steps + 1):
            rec = {"step": s, "loss": 3.0 / s, "lr": 1e-3 * min(1.0, s / 4), "samples_per_s": 100.0}
            rec.update({f"{o}_loss": 1.0 / s + i for i, o in enumerate(objectives)})
            if knn and s % 4 == 0:
                rec["knn_acc"] = 0.1 * s / 4
            f.write(json.dumps(rec) + "\n")
        f.write(json.dumps({"step": steps, "loss": 0.1, "lr": 1e-3}) + "\n")  # a resumed step: last wins
    return folder


def test_two_runs_in_one_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a = _run(tmp_path / "m3i", ["intra_view", "inter_view", "category"], knn=True)
    b = _run(tmp_path / "clip", ["clip"])
    out = tmp_path / "curves.png"
    assert plot_metrics.main([str(a), str(b / "metrics.jsonl"), "--output", str(out), "--smooth", "3"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert "loss, objective losses, learning rate, k-NN accuracy; 2 run(s)" in capsys.readouterr().out
    series = plot.read_series(str(a / "metrics.jsonl"))
    assert series["loss"][-1] == (12, 0.1) and [s for s, _ in series["knn_acc"]] == [4, 8]  # step 12 relogged
    assert plot.smooth([1.0, 3.0, 5.0], 2) == [1.0, 2.0, 4.0]


def test_mistakes_are_one_line_exit_2(tmp_path, capsys, monkeypatch):
    run = _run(tmp_path / "r", ["mae"])
    for argv, what in [([str(tmp_path / "nope"), "--output", str(tmp_path / "x.png")], "no metrics.jsonl"),
                       ([str(run), "--output", str(tmp_path / "x.pdf")], "must end in .png")]:
        assert plot_metrics.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and what in err, err
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert plot_metrics.main([str(run), "--output", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e .[plot]" in err and not (tmp_path / "x.png").exists()
