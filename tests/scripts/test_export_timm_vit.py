"""scripts/export.py: the online ViT tower as safetensors with timm key names loads strictly into timm's
VisionTransformer of the same shape and gives the same features (timm is in the test extra)."""
import json
import os

import pytest
import torch

from cli_utils import TINY_MAE, run_cli
from m3i_modular.convert.timm_vit import to_timm_vit
from m3i_modular.errors import ConfigError
from m3i_modular.recipe.model import build_model

timm_vit = pytest.importorskip("timm.models.vision_transformer")


def _model(cls_token: bool, pos: str, norm: str = "pre"):
    cfg = {"embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32, "pos": pos,
                         "cls_token": cls_token},
           "encoder": {"type": "transformer", "layers": 2, "heads": 4, "dim": 32, "norm": norm, "mlp_ratio": 2.0},
           "objectives": {"category": {"input": "view1", "target_view": "label",
                                       "target_embedding": {"type": "category", "num_classes": 3},
                                       "decoder": {"type": "pool", "pool": "mean", "head": "linear"},
                                       "target": {"type": "boltzmann"}}}}
    m = build_model(cfg, seed=0).eval()
    with torch.no_grad():  # move every tensor off its init value (norms start at 1 / 0, cls at ~0)
        g = torch.Generator().manual_seed(3)
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return m


def _timm(tensors, kwargs):
    vit = timm_vit.VisionTransformer(**kwargs).eval()
    vit.load_state_dict(tensors, strict=True)  # every timm tensor has a value, nothing extra
    return vit


@pytest.mark.parametrize("cls_token, pos", [(False, "sincos"), (True, "learned"), (True, "sincos")])
def test_timm_vit_gives_identical_features(cls_token, pos):
    m = _model(cls_token, pos)
    tensors, kwargs = to_timm_vit(m)
    vit = _timm(tensors, kwargs)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = m.forward_features(x)
        theirs = vit.forward_features(x)
    assert theirs.shape == ours.shape == (3, 16 + cls_token, 32)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    assert tensors["pos_embed"].shape == (1, 16 + cls_token, 32)
    if cls_token:  # the CLS position is zero: ours adds positions before prepending the token
        assert torch.count_nonzero(tensors["pos_embed"][0, 0]) == 0


def test_post_norm_encoder_is_refused():
    with pytest.raises(ConfigError, match="pre-norm"):
        to_timm_vit(_model(False, "sincos", norm="post"))


def test_export_script_round_trip(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from m3i_modular.inference import load

    run = tmp_path / "mae"
    sets = [a for s in TINY_MAE + ["train.total_steps=1", "train.save_every=1"] for a in ("--set", s)]
    run_cli("pretrain.py", "--config", "models/mae_vit.json", *sets, "--output-dir", str(run), check=True)
    out = tmp_path / "vit.safetensors"
    proc = run_cli("scripts/export.py", "--checkpoint", str(run), "--output", str(out), check=True)
    assert "wrote" in proc.stdout
    assert sorted(os.listdir(tmp_path)) == ["mae", "vit.safetensors"]  # no temporary file left behind
    with safe_open(str(out), "pt") as f:
        kwargs = json.loads(f.metadata()["timm_kwargs"])
    vit = _timm(load_file(str(out)), kwargs)
    model = load(str(run)).model.eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_features(x), model.forward_features(x), atol=1e-5, rtol=1e-5)
    # a wrong output name: one error line, exit 2, nothing written
    bad = run_cli("scripts/export.py", "--checkpoint", str(run), "--output", str(tmp_path / "vit.bin"))
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
    assert not (tmp_path / "vit.bin").exists()
