"""open_clip <-> ours through one key table (convert/open_clip.py), random-init models only (no download):
theirs -> --init-from -> ours gives open_clip's image and text features; ours -> scripts/export.py
--format open_clip -> open_clip.create_model("local-dir:...") gives ours; an open_clip checkpoint also
initialises an m3i_vit-shaped model's towers, and what cannot be expressed is refused in one line."""
import json
import os

import pytest
import torch

from cli_utils import REPO, load_script
from convert_utils import perturb
from m3i_modular.training import checkpoint as ckpt
from m3i_modular.cli import init_from
from m3i_modular.convert.open_clip import model_section, to_open_clip
from m3i_modular.convert.pretrained import detect_format
from m3i_modular.errors import ConfigError
from m3i_modular.interfaces import Selection
from m3i_modular.recipe.model import build_model

open_clip = pytest.importorskip("open_clip")

V, CTX = 50, 8
BASE = {"embed_dim": 24, "vision_cfg": {"image_size": 16, "patch_size": 4, "width": 32, "layers": 2, "head_width": 8},
        "text_cfg": {"context_length": CTX, "vocab_size": V, "width": 32, "heads": 4, "layers": 2}}
VARIANTS = {
    "default": BASE,  # ln_pre, class-token pooling, exact GELU, eps 1e-5
    "openai": dict(BASE, quick_gelu=True, vision_cfg=dict(BASE["vision_cfg"], pool_type="avg", no_ln_pre=True)),
    "tanh": dict(BASE, vision_cfg=dict(BASE["vision_cfg"], act_kwargs={"approximate": "tanh"},
                                       norm_kwargs={"eps": 1e-6}),
                 text_cfg=dict(BASE["text_cfg"], act_kwargs={"approximate": "tanh"})),
}
X = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _ids(eot=V - 1, n=3):
    """open_clip's convention: content, the end-of-text token (the largest id), zero padding."""
    g = torch.Generator().manual_seed(1)
    ids = torch.zeros(n, CTX, dtype=torch.long)
    for r, length in enumerate((3, 5, CTX - 1)[:n]):
        ids[r, :length] = torch.randint(1, eot - 1, (length,), generator=g)
        ids[r, length] = eot
    return ids


def _ours_features(model, ids):
    clip = model.objectives["clip"]
    with torch.no_grad():
        z = model.eval().forward_features(X)
        img = clip.decoder(Selection(z=z, rows=torch.arange(z.shape[0]), prefix=1))
        return img, clip.target_embedding({"text": ids}).candidates


def _theirs_features(oc, ids):
    with torch.no_grad():
        return oc.eval().encode_image(X), oc.encode_text(ids)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_open_clip_to_ours_identical_features(tmp_path, variant):
    cfg = VARIANTS[variant]
    oc = perturb(open_clip.model.CLIP(**cfg))
    torch.save(oc.state_dict(), tmp_path / "oc.pt")
    assert detect_format(str(tmp_path / "oc.pt")) == "open_clip"
    ours = build_model(model_section(cfg), seed=0)
    report = init_from(ours, str(tmp_path / "oc.pt"))
    assert report["skipped"] == [] and report["new"] == [], report
    for a, b in zip(_ours_features(ours, _ids()), _theirs_features(oc, _ids())):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.objectives["clip"].target.log_scale, oc.logit_scale.detach())


def _checkpoint(tmp_path, section, seed=5):
    model = perturb(build_model(section, seed=0), seed)
    root = str(tmp_path / "ckpt")
    ckpt.save_checkpoint(root, 0, {"model": model.state_dict()}, config={"model": section},
                         meta=ckpt.run_metadata(1, "fp32"))
    return root, model.eval()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ours_export_loads_in_open_clip_with_identical_features(tmp_path, variant):
    root, ours = _checkpoint(tmp_path, model_section(VARIANTS[variant]))
    patch = ours.embedding if variant == "openai" else ours.embedding.parts["patch"]
    with torch.no_grad():  # open_clip has neither bias: they move into ln_post's bias and the position table
        assert float(ours.objectives["clip"].decoder.head.bias.abs().max()) > 0.01
        assert float(patch.proj.bias.abs().max()) > 0.01
    export = load_script("scripts/export.py")
    out = str(tmp_path / "oc")
    assert export.main(["--checkpoint", root, "--format", "open_clip", "--output", out]) == 0
    assert sorted(os.listdir(out)) == ["open_clip_config.json", "open_clip_model.safetensors"]
    oc = open_clip.create_model("local-dir:" + out)
    for a, b in zip(_theirs_features(oc, _ids()), _ours_features(ours, _ids())):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_export_pools_at_our_eos_id(tmp_path):
    """Our text tower pools the last non-padding token (the EOS the data pipeline always keeps); open_clip
    then pools at eos_id, even when content ids are larger than the EOS id."""
    root, ours = _checkpoint(tmp_path, model_section(BASE))
    export = load_script("scripts/export.py")
    out = str(tmp_path / "oc")
    assert export.main(["--checkpoint", root, "--format", "open_clip", "--output", out, "--eos-id", "3"]) == 0
    cfg = json.loads(open(os.path.join(out, "open_clip_config.json")).read())["model_cfg"]
    assert cfg["text_cfg"]["pool_type"] == "eos" and cfg["text_cfg"]["eos_id"] == 3
    ids = _ids(eot=3)
    ids[:, 0] = V - 1  # a content id larger than EOS: argmax pooling would pick it
    oc = open_clip.create_model("local-dir:" + out)
    torch.testing.assert_close(_theirs_features(oc, ids)[1], _ours_features(ours, ids)[1], atol=1e-5, rtol=1e-5)


def test_open_clip_initialises_an_m3i_vit_shaped_model(tmp_path):
    with open(os.path.join(REPO, "models", "m3i_vit.json")) as f:
        recipe = json.load(f)
    m3i = build_model(recipe["model"], recipe["shared"], seed=0)
    tower = recipe["model"]["objectives"]["text"]["target_embedding"]
    cfg = {"embed_dim": 64,
           "vision_cfg": {"image_size": 32, "patch_size": 4, "width": 64, "layers": 4, "head_width": 16},
           "text_cfg": {"context_length": tower["embedding"]["position"]["max_length"],
                        "vocab_size": tower["embedding"]["word"]["vocab_size"], "width": 64, "heads": 4, "layers": 2,
                        "norm_kwargs": {"eps": 1e-6}}}
    oc = perturb(open_clip.model.CLIP(**cfg)).eval()
    torch.save(oc.state_dict(), tmp_path / "oc.pt")
    report = init_from(m3i, str(tmp_path / "oc.pt"))
    # the image tower's blocks and both towers' text side load; what M3I's shape has no place for is named
    assert report["skipped"] == ["open_clip:visual.class_embedding", "open_clip:visual.ln_pre.bias",
                                 "open_clip:visual.ln_pre.weight", "open_clip:visual.positional_embedding",
                                 "open_clip:visual.proj"]
    assert not any(k.startswith(("encoder.", "objectives.text.target_embedding.")) for k in report["new"])
    ids = torch.zeros(2, cfg["text_cfg"]["context_length"], dtype=torch.long)
    ids[:, :4] = torch.tensor([[5, 6, 7, 64], [9, 10, 11, 64]])
    with torch.no_grad():
        ours = m3i.objectives["text"].target_embedding({"text": ids}).candidates
        torch.testing.assert_close(ours, oc.encode_text(ids), atol=1e-5, rtol=1e-5)
    ema = m3i.shared["ema"]  # the EMA tower restarts from the loaded online weights
    assert any(torch.equal(p, m3i.encoder.blocks[0].attn.qkv.weight) for p in ema.state_dict().values())


def test_what_open_clip_cannot_hold_is_refused_in_one_line(tmp_path):
    with open(os.path.join(REPO, "models", "clip_vit.json")) as f:
        clip_vit = build_model(json.load(f)["model"], seed=0)  # no CLS token, a LayerNorm in the image head
    plain = {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32, "pos": "sincos"}
    no_cls = build_model(dict(model_section(VARIANTS["openai"]), embedding=plain), seed=0)
    for model, what in ((clip_vit, "norm"), (no_cls, "class token")):
        with pytest.raises(ConfigError, match=what) as e:
            to_open_clip(model)
        assert "\n" not in str(e.value)


def test_recipe_of_an_open_clip_shape_then_init_from_through_the_cli(tmp_path):
    """scripts/convert_pretrained.py writes a recipe of the open_clip model's shape; pretrain.py --init-from
    then fills every tensor (nothing skipped, nothing new) and trains."""
    import re

    from cli_utils import run_cli
    cfg = dict(BASE, text_cfg=dict(BASE["text_cfg"], vocab_size=65, context_length=16))
    (tmp_path / "oc.json").write_text(json.dumps({"model_cfg": cfg}))
    oc = open_clip.model.CLIP(**cfg)
    torch.save(oc.state_dict(), tmp_path / "oc.bin")
    run_cli("scripts/convert_pretrained.py", "--open-clip-config", str(tmp_path / "oc.json"), "--base",
            "models/clip_vit.json", "--output", str(tmp_path / "r.json"), check=True)
    sets = ["data.sources.0.image_size=16", "data.sources.0.num_samples=64", "views.view1.0.size=16",
            "train.batch_size=8", "train.num_workers=0", "train.total_steps=1", "train.progress=false"]
    proc = run_cli("pretrain.py", "--config", str(tmp_path / "r.json"), *[a for s in sets for a in ("--set", s)],
                   "--init-from", str(tmp_path / "oc.bin"), "--output-dir", str(tmp_path / "run"), check=True)
    m = re.search(r"init-from \S+: loaded (\d+) tensors, skipped (\d+) .*, new (\d+) ", proc.stderr)
    # every open_clip tensor, plus the zero biases of our patch projection and image head (open_clip has none)
    assert m and int(m.group(1)) == len(oc.state_dict()) + 2 and m.group(2) == m.group(3) == "0", proc.stderr
