"""--init-from recognises its source from the path alone (convert/pretrained.py); what it cannot read is one
error line that says what it reads instead."""
import json

import pytest
import torch

from m3i_modular.training import checkpoint as ckpt
from m3i_modular.convert.pretrained import detect_format, load_pretrained
from m3i_modular.errors import ConfigError
from m3i_modular.recipe.model import build_model

SECTION = {"embedding": {"type": "patch", "image_size": 8, "patch_size": 4, "dim": 16},
           "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 16},
           "objectives": {"c": {"input": "view1", "target_view": "label",
                                "target_embedding": {"type": "category", "num_classes": 2},
                                "decoder": {"type": "pool"}, "target": {"type": "boltzmann"}}}}


def _one_line(path, match):
    with pytest.raises(ConfigError, match=match) as e:
        detect_format(str(path))
    assert "\n" not in str(e.value)


def test_our_checkpoint_directory_and_its_model_file(tmp_path):
    model = build_model(SECTION, seed=0)
    d = ckpt.save_checkpoint(str(tmp_path / "run" / "checkpoints"), 3, {"model": model.state_dict()},
                             config={"model": SECTION}, meta=ckpt.run_metadata(1, "fp32"))
    for path in (tmp_path / "run", d, f"{d}/model.pt"):
        assert detect_format(str(path)) == "ours"
        sd = load_pretrained(str(path), model)
        assert sd.keys() == model.state_dict().keys()


def test_what_does_not_convert_is_one_line(tmp_path):
    _one_line(tmp_path / "missing.pth", "no such file")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    _one_line(tmp_path / "junk.pth", "cannot read")
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pth")
    _one_line(tmp_path / "other.pth", "unrecognised tensors")
    torch.save({"encoder.transformer.0.self_attn.linear_layers.0.weight": torch.zeros(2)}, tmp_path / "tp.bin")
    _one_line(tmp_path / "tp.bin", "convert_tencentpretrain.py")
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    _one_line(tmp_path / "gpt2", "model_type 'gpt2'")
    (tmp_path / "empty").mkdir()
    _one_line(tmp_path / "empty", "no checkpoint")
