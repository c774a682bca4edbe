"""InternImage recipes: the tiny CPU ones train through the real CLI; the *_base twins build on the meta
device with the paper's parameter counts (InternImage-T 30M, S 50M, B 97M: Wang et al. 2023, Table 1)."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from m3i_modular.config import load_config
from m3i_modular.run import build_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["train.batch_size=8", "train.num_workers=0", "train.total_steps=3", "train.log_every=1",
         "train.save_every=3", "data.sources.0.num_samples=64"]


def _train(recipe, out, extra=()):
    args = [sys.executable, os.path.join(REPO, "pretrain.py"), "--config", os.path.join(REPO, "models", recipe),
            "--output-dir", str(out)]
    for s in SMALL + list(extra):
        args += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_supervised_internimage_trains(tmp_path):
    rows = [r for r in _train("supervised_internimage.json", tmp_path) if "loss" in r]
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    # zero-initialised class embeddings: the first cross-entropy is ln(10), label smoothing or not
    assert rows[0]["category_loss"] == pytest.approx(math.log(10), abs=1e-4)


def _count(recipe, sets=()):
    cfg = load_config(os.path.join(REPO, "models", recipe), overrides=list(sets))
    run = build_run(cfg, with_data=False, device="meta")
    return sum(p.numel() for p in run.model.parameters())


@pytest.mark.parametrize("size,sets,millions", [
    ("T", [], 30), ("S", ["model.encoder.size=S", "model.embedding.dim=80",
                          "model.objectives.category.target_embedding.dim=960"], 50),
    ("B", ["model.encoder.size=B", "model.embedding.dim=112",
           "model.objectives.category.target_embedding.dim=1344"], 97)])
def test_supervised_base_has_the_paper_parameter_count(size, sets, millions):
    n = _count("supervised_internimage_base.json", sets)
    assert abs(n / 1e6 - millions) < 0.6, (size, n)
