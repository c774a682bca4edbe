"""timm <-> ours through one key table (convert/timm_vit.py): ours -> timm gives timm's features for every
tower shape we export (CLS or not, a pre-norm part, tanh / quick GELU), and a timm state dict -- .pth or
.safetensors -- enters through --init-from with identical features and a loaded / skipped / new report."""
import re

import pytest
import torch

from cli_utils import run_cli
from convert_utils import perturb
from m3i_modular.cli import init_from
from m3i_modular.convert.pretrained import detect_format
from m3i_modular.convert.timm_vit import to_timm_vit
from m3i_modular.errors import ConfigError
from m3i_modular.recipe.model import build_model

timm_vit = pytest.importorskip("timm.models.vision_transformer")

HEAD = {"category": {"input": "view1", "target_view": "label",
                     "target_embedding": {"type": "category", "num_classes": 3},
                     "decoder": {"type": "pool", "pool": "mean", "head": "linear"}, "target": {"type": "boltzmann"}}}


def _ours(cls_token=True, pre_norm=False, act="gelu", pos="learned", eps=1e-6):
    emb = {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32, "pos": pos, "cls_token": cls_token}
    if pre_norm:
        emb = {"patch": emb, "ln_pre": {"type": "layer_norm", "dim": 32, "eps": eps}}
    cfg = {"embedding": emb, "encoder": {"type": "transformer", "layers": 2, "heads": 4, "dim": 32, "norm": "pre",
                                         "mlp_ratio": 2.0, "act": act, "eps": eps}, "objectives": HEAD}
    return build_model(cfg, seed=0).eval()


X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("cls_token, pre_norm, act", [(True, True, "quick_gelu"), (False, True, "gelu_tanh"),
                                                      (True, False, "gelu_tanh")])
def test_ours_to_timm_identical_features(cls_token, pre_norm, act):
    m = perturb(_ours(cls_token, pre_norm, act))
    tensors, kwargs = to_timm_vit(m)
    vit = timm_vit.VisionTransformer(**kwargs).eval()
    vit.load_state_dict(tensors, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_features(X), m.forward_features(X), atol=1e-5, rtol=1e-5)
    if pre_norm:  # timm's patch projection has no bias under pre_norm: ours moved into the position table
        assert "patch_embed.proj.bias" not in tensors


def test_timm_eps_other_than_1e6_is_refused():
    with pytest.raises(ConfigError, match="eps"):
        to_timm_vit(_ours(eps=1e-5))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_to_ours_identical_features(tmp_path, suffix):
    vit = perturb(timm_vit.VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=4,
                                              mlp_ratio=2.0, num_classes=3)).eval()
    path = tmp_path / f"vit{suffix}"
    sd = {k: v.contiguous() for k, v in vit.state_dict().items()}
    if suffix == ".pth":
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)  # a training script's wrapper
    else:
        from safetensors.torch import save_file
        save_file(sd, str(path))
    assert detect_format(str(path)) == "timm"
    ours = _ours()
    report = init_from(ours, str(path))
    assert report["loaded"] == len(sd) - 2                         # all but timm's classifier head
    assert report["skipped"] == ["timm:head.bias", "timm:head.weight"]
    assert report["new"] == ["objectives.category.decoder.head.bias", "objectives.category.decoder.head.weight",
                             "objectives.category.target_embedding.bias",
                             "objectives.category.target_embedding.weight"]
    with torch.no_grad():
        torch.testing.assert_close(ours.eval().forward_features(X), vit.forward_features(X), atol=1e-5, rtol=1e-5)


def test_timm_into_a_cls_less_sincos_tower_reports_what_it_cannot_use(tmp_path):
    vit = timm_vit.VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0,
                                     num_classes=0)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    report = init_from(_ours(cls_token=False, pos="sincos"), str(tmp_path / "vit.pth"))
    assert report["skipped"] == ["timm:cls_token", "timm:pos_embed"]  # no CLS here, positions are a fixed table


def test_init_from_timm_through_the_cli(tmp_path):
    vit = timm_vit.VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=0,
                                     class_token=False, global_pool="avg", fc_norm=False)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    sets = ["model.embedding.image_size=16", "model.embedding.dim=32", "model.embedding.pos=learned",
            "model.encoder.dim=32", "model.encoder.layers=2", "model.encoder.heads=2",
            "data.sources.0.image_size=16", "data.sources.0.num_samples=64", "views.view1.0.size=16",
            "train.batch_size=8", "train.num_workers=0", "train.total_steps=1", "train.progress=false"]
    args = [a for s in sets for a in ("--set", s)]
    proc = run_cli("pretrain.py", "--config", "models/supervised_vit.json", *args, "--init-from",
                   str(tmp_path / "vit.pth"), "--output-dir", str(tmp_path / "run"), check=True)
    m = re.search(r"init-from \S+: loaded (\d+) tensors, skipped (\d+) .*, new (\d+) ", proc.stderr)
    assert m and int(m.group(1)) == len(vit.state_dict()) and int(m.group(2)) == 0, proc.stderr
    bad = run_cli("pretrain.py", "--config", "models/supervised_vit.json", *args, "--init-from",
                  str(tmp_path / "nothing.pth"), "--output-dir", str(tmp_path / "run2"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "run2").exists()
