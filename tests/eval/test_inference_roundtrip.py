"""load(): a trained checkpoint rebuilt from its own config gives the trained model's features; the
encode_* API, preprocessing of PIL / uint8 input, and one-line errors."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from m3i_modular import inference
from m3i_modular.cli import main as pretrain_main
from m3i_modular.recipe.config import load_config
from m3i_modular.runtime.distributed import DistEnv
from m3i_modular.errors import ConfigError, DataError
from m3i_modular.interfaces import TargetOut
from m3i_modular.run import build_optim, build_run
from m3i_modular.training.trainer import Trainer

from tiny_recipe import RECIPE, TINY, tiny_args  # noqa: E402  (tests/eval is on sys.path via conftest)


def _train_in_process(out: str):
    cfg = load_config(RECIPE, overrides=TINY + [f"train.output_dir={out}"])
    run = build_run(cfg)
    os.makedirs(out)
    opt, schedule = build_optim(run)
    resolved = json.loads(json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}))
    Trainer(model=run.model, optimizer=opt, schedule=schedule, dataset=run.dataset, collate=run.collate,
            train=run.train, env=DistEnv(), config=resolved, output_dir=out).train()
    return cfg, run.model


def test_loaded_checkpoint_reproduces_the_trained_models_features(tmp_path):
    cfg, trained = _train_in_process(str(tmp_path / "run"))
    loaded = inference.load(str(tmp_path / "run"))
    x = torch.randn(3, 3, 32, 32)
    trained.eval()
    with torch.no_grad():
        want = trained.forward_features(x)
    got = loaded.forward_features(x)
    assert got.shape == (3, 64, 32)
    assert torch.equal(got, want)
    assert torch.allclose(loaded.encode_image(x), want.mean(1))
    # it really loaded: the same recipe at its initial weights gives different features
    fresh = inference.Pretrained.from_config(cfg)
    assert not torch.allclose(fresh.forward_features(x), want, atol=1e-4)


def test_pil_and_uint8_inputs_go_through_the_recipe_eval_view(tmp_path):
    model = inference.Pretrained.from_config(load_config(RECIPE, overrides=TINY))
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)       # not the model's size: resized + cropped
    from_pil = model.preprocess(Image.fromarray(arr))
    from_u8 = model.preprocess(torch.from_numpy(arr).permute(2, 0, 1))
    assert from_pil.shape == (1, 3, 32, 32) and torch.equal(from_pil, from_u8)
    # the recipe normalises with ImageNet statistics: a mid-grey image maps to (0.5 - mean) / std
    grey = model.preprocess(torch.full((2, 3, 32, 32), 128, dtype=torch.uint8))
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(grey[0, :, 5, 5], (128 / 255 - mean) / std, atol=1e-5)
    assert torch.equal(model.encode_image([torch.from_numpy(arr).permute(2, 0, 1)]),
                       model.encode_image(from_u8))
    with pytest.raises(DataError, match="uint8"):
        model.preprocess(torch.zeros(3, 8, 8, dtype=torch.int32))


def test_encode_image_with_a_projector_objective():
    cfg = load_config(RECIPE, overrides=TINY)
    cfg["model"]["objectives"]["cls"] = {
        "input": "view1", "target_view": "label", "target_embedding": {"type": "category", "num_classes": 10},
        "decoder": {"type": "pool", "pool": "mean", "head": "linear"}, "target": {"type": "boltzmann"}}
    model = inference.Pretrained.from_config(cfg)
    x = torch.randn(2, 3, 32, 32)
    head = model.model.objectives["cls"].decoder.head
    with torch.no_grad():
        want = head(model.forward_features(x).mean(1))
    assert torch.allclose(model.encode_image(x, objective="cls"), want, atol=1e-6)
    with pytest.raises(ConfigError, match="per-token predictor"):
        model.encode_image(x, objective="mae")
    with pytest.raises(ConfigError, match="did you mean 'cls'"):
        model.encode_image(x, objective="clss")


class _FakeTextTower(nn.Module):
    """Stands in for the text tower: the mean of embedded ids, as a target embedding would return it."""
    registry_name = "text_tower"

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(512, 4)

    def forward(self, batch, *, view):
        ids = batch[view]
        return TargetOut(valid=batch["present"][view], value=self.emb(ids).mean(1))


def test_tokenizer_comes_from_the_checkpoint_and_encode_text_uses_the_tower(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a small red circle on a plain background\n")
    run_dir = tmp_path / "run"
    argv = ["--config", RECIPE, "--output-dir", str(run_dir)] + tiny_args()
    argv += ["--set", json.dumps({"type": "char", "corpus": [str(corpus)]}).join(["tokenizer=", ""])]
    assert pretrain_main(argv) == 0
    loaded = inference.load(str(run_dir))
    assert loaded.tokenizer is not None
    assert os.path.isdir(os.path.join(run_dir, "checkpoints", "step_00000003", "tokenizer"))
    with pytest.raises(ConfigError, match="no text tower"):
        loaded.encode_text(["a red circle"])
    tower = _FakeTextTower()
    loaded.model.shared["text"] = tower
    ids = loaded.tokenize(["a red circle", "a blue ring"])
    out = loaded.encode_text(["a red circle", "a blue ring"])
    assert out.shape == (2, 4) and torch.allclose(out, tower.emb(ids).mean(1))
    assert not torch.equal(ids[0], ids[1])


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint at"):
        inference.load(str(tmp_path))
    step = tmp_path / "step_00000001"
    step.mkdir()
    torch.save({}, step / "model.pt")
    with pytest.raises(ConfigError, match="config.json"):
        inference.load(str(step))
