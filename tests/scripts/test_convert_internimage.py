"""scripts/convert_internimage.py (m3i_modular/convert/internimage.py) against the upstream InternImage-T key
list (committed fixture), and a tiny end-to-end conversion whose values must arrive unchanged where --init-from
puts them."""
import json
import os
import re
from pathlib import Path

import pytest
import torch

from cli_utils import load_script
from m3i_modular.cli import init_from
from m3i_modular.convert import internimage
from m3i_modular.recipe.config import load_config
from m3i_modular.errors import DataError
from m3i_modular.recipe.model import build_model

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "internimage_t_1k_224_state_dict_shapes.json"

conv = internimage                                 # the key table and the checks
cli = load_script("scripts/convert_internimage.py")  # the command line


def _to_upstream(name: str) -> str:
    """Our names -> upstream's, written out by hand (independent of the converter's rules)."""
    name = name.replace("objectives.category.target_embedding.", "head.")
    name = re.sub(r"^embedding\.norm([12])\.", r"patch_embed.norm\1.1.", name)
    name = name.replace("embedding.", "patch_embed.")
    name = name.replace("encoder.head.conv.", "conv_head.0.").replace("encoder.head.bn.", "conv_head.1.0.")
    name = name.replace("encoder.stages.", "levels.")
    name = re.sub(r"\.norm([12])\.(weight|bias)$", r".norm\1.0.\2", name)
    name = re.sub(r"^(levels\.\d+)\.norm\.", r"\1.norm.0.", name)
    return name.replace(".downsample.norm.", ".downsample.norm.1.")


def _base_model_shapes():
    cfg = load_config(str(ROOT / "models" / "supervised_internimage_base.json"))
    with torch.device("meta"):
        model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_every_upstream_t_key_maps_once_with_equal_shapes():
    fixture = json.loads(FIXTURE.read_text())
    upstream = {k: torch.empty(v, device="meta") for k, v in fixture["shapes"].items()}
    assert len(upstream) == fixture["num_tensors"] == 633
    converted = conv.convert_state_dict(upstream, objective="category")
    assert len(converted) == len(upstream)  # no two upstream tensors land on one name
    ours = _base_model_shapes()
    assert set(converted) == set(ours)       # every key mapped, none left over on either side
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours
    conv.check_against(converted, ours)      # the script's own check agrees


def test_hand_written_inverse_reproduces_upstream_names():
    """Guards the round-trip test below: the inverse used there is right on the real T layout."""
    fixture = json.loads(FIXTURE.read_text())
    assert {_to_upstream(k): v for k, v in _base_model_shapes().items()} == \
        {k: tuple(v) for k, v in fixture["shapes"].items()}


def _tiny_cfg(tmp_path):
    cfg = json.loads((ROOT / "models" / "supervised_internimage.json").read_text())
    cfg["model"]["encoder"]["head_scale"] = 1.5  # upstream's conv_head, width 128 * 1.5
    cfg["model"]["objectives"]["category"]["target_embedding"]["dim"] = 192
    cfg["model"]["objectives"]["category"]["decoder"] = {"type": "pool", "pool": "mean", "head": "none"}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return path


def test_cli_round_trip_values_land_in_the_model(tmp_path):
    cfg_path = _tiny_cfg(tmp_path)
    cfg = load_config(str(cfg_path))
    model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    gen = torch.Generator().manual_seed(0)
    ours = {k: (torch.randn(v.shape, generator=gen) if v.is_floating_point() else torch.full_like(v, 7))
            for k, v in model.state_dict().items()}
    torch.save({"model": {_to_upstream(k): v for k, v in ours.items()}}, tmp_path / "up.pth")
    out = tmp_path / "converted"
    assert cli.main(["--input", str(tmp_path / "up.pth"), "--config", str(cfg_path), "--output", str(out)]) == 0
    fresh = build_model(cfg["model"], cfg.get("shared"), seed=1)
    report = init_from(fresh, str(out))
    assert report["skipped"] == [] and report["new"] == []
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, ours[k]), k


def test_backbone_only_drops_the_classifier(tmp_path):
    fixture = json.loads(FIXTURE.read_text())
    upstream = {k: torch.empty(v, device="meta") for k, v in fixture["shapes"].items()}
    converted = conv.convert_state_dict(upstream, objective=None, drop=("head.",))
    assert not any(k.startswith("objectives.") for k in converted)
    assert len(converted) == len(upstream) - 2


def test_unmapped_and_mismatched_tensors_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="no mapping.*post_norms"):
        conv.convert_state_dict({"levels.2.post_norms.0.0.weight": torch.zeros(3)})
    with pytest.raises(DataError, match="shape of 'encoder.stages.0.norm.weight'"):
        conv.check_against({"encoder.stages.0.norm.weight": torch.zeros(3)}, {"encoder.stages.0.norm.weight": (4,)})
    cfg_path = _tiny_cfg(tmp_path)
    torch.save({"model": {"patch_embed.conv1.weight": torch.zeros(1, 3, 3, 3)}}, tmp_path / "bad.pth")
    out = tmp_path / "never"
    assert cli.main(["--input", str(tmp_path / "bad.pth"), "--config", str(cfg_path), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".never")]
