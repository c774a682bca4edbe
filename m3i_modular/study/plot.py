"""Training curves of one or more runs as one PNG (scripts/plot_metrics.py is the command line): total loss,
each objective's `<name>_loss`, the learning rate and, where the run logged it, the k-NN monitor's `knn_acc`
(from each run's metrics.jsonl). matplotlib is an optional extra, imported only when a chart is drawn."""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Tuple

from ..errors import ConfigError, DataError

Series = Dict[str, List[Tuple[int, float]]]  # metric -> [(step, value)]


def metrics_file(run: str) -> str:
    path = os.path.join(run, "metrics.jsonl") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise ConfigError(f"'{run}': no metrics.jsonl (give a run directory or a metrics.jsonl file)")
    return path


def read_series(path: str) -> Series:
    """Numeric metrics by step; a step logged twice (a resumed run) keeps its last record."""
    by_step: Dict[int, dict] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise DataError(f"{path}:{lineno}: not a JSON record") from None
            if isinstance(rec, dict) and isinstance(rec.get("step"), int):
                by_step[rec["step"]] = rec
    if not by_step:
        raise DataError(f"{path}: no logged steps")
    series: Series = {}
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                series.setdefault(key, []).append((step, float(value)))
    return series


def smooth(values: List[float], window: int) -> List[float]:
    """Trailing moving average over `window` points (1: unchanged)."""
    if window <= 1:
        return values
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def run_labels(runs: List[str]) -> List[str]:
    """Short, distinct names: the run directory's name, its path where two names clash."""
    names = [os.path.basename(os.path.normpath(r if os.path.isdir(r) else os.path.dirname(r) or r)) for r in runs]
    return [n if names.count(n) == 1 else os.path.normpath(r) for n, r in zip(names, runs)]


def panels(all_series: List[Series]) -> List[Tuple[str, List[str]]]:
    """(title, metric keys) of the panels that have data in at least one run."""
    keys = set().union(*all_series)
    objectives = sorted(k for k in keys if k.endswith("_loss") and k != "loss")
    out = [("loss", ["loss"]), ("objective losses", objectives), ("learning rate", ["lr"]),
           ("k-NN accuracy", ["knn_acc"])]
    return [(title, ks) for title, ks in out if any(k in keys for k in ks)]


def plot(runs: List[str], output: str, *, window: int = 1, log_loss: bool = False) -> List[str]:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plot_metrics.py needs matplotlib, an optional extra: pip install -e .[plot] "
                          "(or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..runtime.atomic import atomic_path

    all_series = [read_series(metrics_file(r)) for r in runs]
    labels = run_labels(runs)
    shown = panels(all_series)
    if not shown:
        raise DataError("the runs logged none of loss, <name>_loss, lr or knn_acc")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for ax, (title, keys) in zip(axes[0], shown):
        line = 0  # one colour per curve in the panel; with several objectives a run keeps one line style
        for r, (series, label) in enumerate(zip(all_series, labels)):
            for key in (k for k in keys if k in series):
                steps, values = zip(*series[key])
                values = smooth(list(values), window) if key != "lr" else list(values)
                many = len(keys) > 1
                ax.plot(steps, values, label=f"{label}: {key[:-5]}" if many else label,
                        color=colours[line % len(colours)], linestyle=styles[r % len(styles)] if many else "-",
                        marker="o" if key == "knn_acc" else None, markersize=3)
                line += 1
        ax.set_title(title)
        ax.set_xlabel("step")
        if log_loss and "loss" in title:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return [title for title, _ in shown]
