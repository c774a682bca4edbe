"""A study's report (scripts/compare_recipes.py): the finished cells' metrics -> mean ± sd over seeds ->
results.md (a markdown table), results.json and results.png (a bar chart; matplotlib is optional)."""
import math
import os
from typing import List, Optional, Sequence, Tuple

from .plan import COLUMN_TITLES, Entry, Evaluation
from .run import Options, read_json, write_json


def mean_sd(values: Sequence[float]) -> Tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def collect(out: str, entries: List[Entry], seeds: List[int], evals: List[Evaluation]) -> dict:
    rows = {}
    for e in entries:
        cells = [read_json(os.path.join(out, "cells", e.slug, f"seed{s}", "results.json")) for s in seeds]
        cells = [c for c in cells if c]
        row = {"seeds": [c["seed"] for c in cells], "metrics": {}}
        walls = [c["pretrain_wall_s"] for c in cells if c.get("pretrain_wall_s") is not None]
        if walls:
            m, sd = mean_sd(walls)
            row["pretrain_wall_s"] = {"mean": m, "sd": sd, "n": len(walls)}
        for ev in evals:
            status = {c["evals"].get(ev.name, {}).get("skipped", "") for c in cells}
            for col in ev.columns:
                vals = [c["metrics"][col] for c in cells if col in c.get("metrics", {})]
                if vals:
                    m, sd = mean_sd(vals)
                    row["metrics"][col] = {"mean": m, "sd": sd, "n": len(vals), "values": vals}
                elif any(s.startswith("n/a") for s in status):
                    row["metrics"][col] = "n/a"
                elif any(s.startswith("missing") for s in status):
                    row["metrics"][col] = "missing"
        rows[e.label] = row
    return rows


def markdown(rows: dict, evals: List[Evaluation], header: str) -> str:
    every = [c for ev in evals for c in ev.columns]
    cols = [c for c in every if any(isinstance(r["metrics"].get(c), dict) or r["metrics"].get(c) == "n/a"
                                    for r in rows.values())]
    dropped = [COLUMN_TITLES.get(c, c) for c in every if c not in cols]
    titles = ["recipe", "pretrain (min)"] + [COLUMN_TITLES.get(c, c) for c in cols]
    lines = [header, "", "| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for label, r in rows.items():
        w = r.get("pretrain_wall_s")
        cells = [f"`{label}`", ("–" if not w else f"{w['mean'] / 60:.1f}"
                                + (f" ± {w['sd'] / 60:.1f}" if w["n"] > 1 else ""))]
        for c in cols:
            v = r["metrics"].get(c)
            if isinstance(v, dict):
                sd = f" ± {100 * v['sd']:.1f}" if v["n"] > 1 else ""
                cells.append(f"{100 * v['mean']:.1f}{sd}")
            else:
                cells.append("n/a" if v == "n/a" else "–")
        lines.append("| " + " | ".join(cells) + " |")
    if dropped:
        lines += ["", f"No result yet (entry point missing or not run): {', '.join(dropped)}."]
    return "\n".join(lines) + "\n"


def chart(rows: dict, evals: List[Evaluation], path: str) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is not installed (pip install matplotlib)"
    cols = [c for ev in evals for c in ev.columns if any(isinstance(r["metrics"].get(c), dict) for r in rows.values())]
    if not cols:
        return "no chart: no metric yet"
    labels = list(rows)
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 0.35 * len(labels) + 1.8), sharey=True,
                             squeeze=False)
    for ax, col in zip(axes[0], cols):
        means, sds = [], []
        for lb in labels:
            v = rows[lb]["metrics"].get(col)
            means.append(100 * v["mean"] if isinstance(v, dict) else 0.0)
            sds.append(100 * v["sd"] if isinstance(v, dict) else 0.0)
        ax.barh(range(len(labels)), means, xerr=sds, color="#4c72b0", ecolor="#333333", capsize=2)
        ax.set_title(COLUMN_TITLES.get(col, col), fontsize=9)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # the table's order, top down (the axes share y: invert once)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def report(out: str, entries: List[Entry], opts: Options) -> None:
    p = opts.protocol
    rows = collect(out, entries, opts.seeds, opts.evals)
    header = (f"Study `{os.path.basename(os.path.abspath(out))}`: {p.steps} pretraining steps x batch {p.batch_size}, "
              f"seeds {', '.join(map(str, opts.seeds))}; mean ± sd over seeds (%, pretraining time in minutes).")
    md = markdown(rows, opts.evals, header)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    write_json(os.path.join(out, "results.json"), {"protocol": p.__dict__, "seeds": opts.seeds, "rows": rows})
    note = chart(rows, opts.evals, os.path.join(out, "results.png"))
    print(md)
    print(note or f"chart: {os.path.join(out, 'results.png')}")
