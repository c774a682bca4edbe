import json
import os

import pytest
import torch

from m3i_modular.recipe.config import load_config
from m3i_modular.recipe.model import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(ROOT, "models", "m3i_vit.json")
OBJECTIVES = ("intra_view", "inter_view", "category", "text")


def _batch(b=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"views": {"view1": torch.randn(b, 3, size, size, generator=g),
                      "view2": torch.randn(b, 3, size, size, generator=g)},
            "geometry": {"view1": torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]).repeat(b, 1),
                         "view2": torch.tensor([[0.2, 0.1, 0.9, 0.8, 1.0]]).repeat(b, 1)},
            "label": torch.randint(0, 10, (b,), generator=g),
            "present": {"label": torch.ones(b, dtype=torch.bool)}}


def _only(name: str, cfg: dict) -> dict:
    """M3I with mixing off and every objective but `name` at weight 0."""
    model = json.loads(json.dumps(cfg["model"]))
    model["batch_transforms"] = []
    for key, obj in model["objectives"].items():
        obj["weight"] = 1.0 if key == name else 0.0
    model["objectives"][name].update(input="view1", select="all")
    return model


@pytest.mark.parametrize("name", ["category", "inter_view"])
def test_m3i_reduces_to_the_single_objective_baseline(name):
    cfg = load_config(RECIPE)
    m3i = build_model(_only(name, cfg), cfg["shared"], seed=0)
    # the matching baseline recipe: one objective, no mixing, only the shared parts it uses
    single = {k: v for k, v in cfg["model"].items() if k in ("embedding", "encoder")}
    obj = dict(cfg["model"]["objectives"][name], input="view1", select="all")
    obj.pop("weight")
    single["objectives"] = {name: obj}
    shared = {"ema": cfg["shared"]["ema"]} if obj["target_embedding"] == "@ema" else {}
    base = build_model(single, shared, seed=0)
    sd_m, sd_b = m3i.state_dict(), base.state_dict()
    assert sorted(sd_m) == sorted(sd_b)
    for other in OBJECTIVES:
        if other != name:
            assert not any(k.startswith(f"objectives.{other}.") for k in sd_m)
    if name == "category":
        assert not any(k.startswith("shared.ema") for k in sd_m)   # used only by weight-0 objectives
    for k in sd_m:
        assert torch.equal(sd_m[k], sd_b[k]), k
    batch = _batch()
    m3i.train(), base.train()
    out_m, out_b = m3i(batch), base(batch)
    assert torch.equal(out_m["loss"], out_b["loss"])
    assert torch.equal(out_m[f"{name}_loss"], out_b[f"{name}_loss"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_m3i_vit_trains_a_few_steps_and_logs_all_losses(tmp_path):
    from m3i_modular.cli import main
    out = tmp_path / "run"
    rc = main(["--config", RECIPE, "--output-dir", str(out), "--set", "train.total_steps=2",
               "--set", "train.batch_size=8", "--set", "train.num_workers=0", "--set", "train.log_every=1",
               "--set", "train.progress=false", "--set", "train.precision=fp32",
               # some samples without label or caption: those objectives skip them, the rest still train
               "--set", "data.sources.0.label_fraction=0.5", "--set", "data.sources.0.caption_fraction=0.5"])
    assert rc == 0
    recs = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        for name in OBJECTIVES:
            assert torch.isfinite(torch.tensor(r[f"{name}_loss"])), (name, r)
        for name in ("intra_view", "inter_view"):
            assert r[f"{name}_mean_baseline"] > 0
    # the class embeddings start at zero: the first step's cross-entropy is ln(10), smoothing or not
    assert abs(recs[0]["category_loss"] - torch.log(torch.tensor(10.0)).item()) < 1e-4
    assert (out / "checkpoints").is_dir()


def test_m3i_vit_base_builds_on_meta_with_vit_b_size():
    cfg = load_config(os.path.join(ROOT, "models", "m3i_vit_base.json"))
    with torch.device("meta"):
        model = build_model(cfg["model"], cfg["shared"], seed=0)
    tower = sum(p.numel() for m in (model.embedding, model.encoder) for p in m.parameters())
    assert abs(tower - 85.8e6) / 85.8e6 < 0.01                      # ViT-B/16 ~ 86M
    ema = sum(p.numel() for p in model.shared["ema"].parameters())
    assert ema == tower and not any(p.requires_grad for p in model.shared["ema"].parameters())
    pred = model.objectives["inter_view"].decoder
    assert pred.embed.in_features == 768 and pred.embed.out_features == 512 and len(pred.blocks) == 4
    assert pred.out.out_features == 768
    assert model.shared["ema"].momentum == (0.995, 1.0)
