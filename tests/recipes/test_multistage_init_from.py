"""Multi-stage training: `pretrain.py --init-from` a mae_vit checkpoint into supervised_vit loads the shared
tower by name, skips MAE's decoder, initialises the classifier anew, and the loaded tensors arrive unchanged."""
import os
import re

import torch

from cli_utils import REPO, TINY_MAE, run_cli
from m3i_modular.training import checkpoint as ckpt
from m3i_modular.cli import init_from
from m3i_modular.recipe.config import load_config
from m3i_modular.recipe.model import build_model

TINY_SUP = ["model.embedding.image_size=16", "model.embedding.dim=32", "model.encoder.dim=32",
            "model.encoder.layers=2", "model.encoder.heads=2", "data.sources.0.image_size=16",
            "data.sources.0.num_samples=64", "views.view1.0.size=16", "train.batch_size=8",
            "train.num_workers=0", "train.progress=false"]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


def test_init_from_mae_into_supervised(tmp_path):
    mae_run, sup_run = tmp_path / "mae", tmp_path / "sup"
    run_cli("pretrain.py", "--config", "models/mae_vit.json",
            *_sets(TINY_MAE + ["train.total_steps=2", "train.save_every=2"]), "--output-dir", str(mae_run),
            check=True)
    src = ckpt.load_tensors(ckpt.resolve_checkpoint(str(mae_run)), "model")
    tower = sorted(k for k in src if k.startswith(("embedding.", "encoder.")))
    mae_only = sorted(k for k in src if k.startswith("objectives.mae."))
    assert tower and mae_only and len(tower) + len(mae_only) == len(src)

    # lr 0: the second stage's step leaves every loaded tensor as it arrived
    proc = run_cli("pretrain.py", "--config", "models/supervised_vit.json",
                   *_sets(TINY_SUP + ["train.total_steps=1", "train.save_every=1", "optim.lr=0.0"]),
                   "--init-from", str(mae_run), "--output-dir", str(sup_run), check=True)
    m = re.search(r"init-from \S+: loaded (\d+) tensors, skipped (\d+) .*, new (\d+) ", proc.stderr)
    assert m, proc.stderr[-2000:]
    loaded, skipped, new = map(int, m.groups())
    dst = ckpt.load_tensors(ckpt.resolve_checkpoint(str(sup_run)), "model")
    classifier = [k for k in dst if k.startswith("objectives.category.")]
    assert (loaded, skipped, new) == (len(tower), len(mae_only), len(classifier))
    for k in tower:
        assert torch.equal(dst[k], src[k]), k

    # the same report as lists, straight from the function the CLI calls
    cfg = load_config(os.path.join(REPO, "models", "supervised_vit.json"),
                      overrides=[s for s in TINY_SUP if s.startswith(("model.", "data.", "views."))])
    fresh = build_model(cfg["model"], cfg.get("shared"), seed=1)
    report = init_from(fresh, str(mae_run))
    assert report["loaded"] == len(tower)
    assert report["skipped"] == mae_only
    assert report["new"] == sorted(classifier)
    state = fresh.state_dict()
    assert all(torch.equal(state[k], src[k]) for k in tower)
