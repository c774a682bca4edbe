"""InternImage recipes: the tiny CPU ones train through the real CLI; the *_base twins build on the meta
device with the paper's parameter counts (InternImage-T 30M, S 50M, B 97M: Wang et al. 2023, Table 1)."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from m3i_modular.recipe.config import load_config
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


def _m3i_components():
    from m3i_modular.recipe import model  # noqa: F401  (registers what the spine imports)
    from m3i_modular.registry import BATCH_TRANSFORMS, TARGET_EMBEDDINGS
    return "mix_views" in BATCH_TRANSFORMS and "momentum" in TARGET_EMBEDDINGS


needs_m3i = pytest.mark.skipif(not _m3i_components(), reason="needs the M3I components (mix_views, momentum)")


@needs_m3i
def test_m3i_internimage_trains_on_the_stride16_grid(tmp_path):
    rows = [r for r in _train("m3i_internimage.json", tmp_path, ["train.total_steps=2", "train.save_every=2"])
            if "loss" in r]
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)
    # 64 px at stride 16 = a 4x4 grid: A regresses the 8 tokens B took, B every token of its other view
    assert rows[0]["intra_view_count"] == 8 * 8 and rows[0]["inter_view_count"] == 8 * 16


@needs_m3i
def test_m3i_internimage_base_is_internimage_t_with_a_stride16_neck():
    cfg = load_config(os.path.join(REPO, "models", "m3i_internimage_base.json"))
    run = build_run(cfg, with_data=False, device="meta")
    tower = sum(p.numel() for m in (run.model.embedding, run.model.encoder) for p in m.parameters())
    sup = load_config(os.path.join(REPO, "models", "supervised_internimage_base.json"),
                      overrides=["model.encoder.head_scale=0.0", "model.objectives.category.target_embedding.dim=512"])
    backbone = sum(p.numel() for m in (lambda r: (r.model.embedding, r.model.encoder))(
        build_run(sup, with_data=False, device="meta")) for p in m.parameters())
    neck = (512 * 2048 + 2048) + (256 * 512 + 512)  # 1x1 conv to 4 x 512 (pixel shuffle), 1x1 lateral of stage 3
    assert tower == backbone + neck
    # InternImage-T without its classification head, counted off the upstream key list
    fixture = json.load(open(os.path.join(REPO, "tests", "scripts", "fixtures",
                                          "internimage_t_1k_224_state_dict_shapes.json")))
    upstream = sum(math.prod(s) for k, s in fixture["shapes"].items() if not k.startswith(("conv_head.", "head.")))
    assert backbone == upstream
    assert run.model.encoder.output_grid((56, 56)) == (14, 14)


def test_supervised_base_counts_exactly_upstream_internimage_t():
    fixture = json.load(open(os.path.join(REPO, "tests", "scripts", "fixtures",
                                          "internimage_t_1k_224_state_dict_shapes.json")))
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert _count("supervised_internimage_base.json") == sum(
        math.prod(s) for k, s in fixture["shapes"].items() if not k.endswith(buffers))
