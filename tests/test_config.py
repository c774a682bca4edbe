import json
import os

import pytest

from m3i_modular.recipe.config import apply_set, deep_merge, load_config
from m3i_modular.errors import ConfigError

MINI = {"model": {"embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
                  "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 32},
                  "objectives": {"c": {"input": "view1", "target_view": "label",
                                       "target_embedding": {"type": "category", "num_classes": 10},
                                       "decoder": {"type": "pool"}, "target": {"type": "boltzmann"}}}},
        "data": {"sources": [{"type": "synthetic_shapes", "image_size": 16, "num_samples": 64}]},
        "views": {"view1": [{"type": "normalize"}]},
        "train": {"total_steps": 2, "batch_size": 4, "num_workers": 0, "progress": False, "log_every": 1}}


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


def test_deep_merge_null_deletes_and_nests():
    out = deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": None, "e": 4}, "d": None})
    assert out == {"a": {"b": 1, "e": 4}}


def test_base_inheritance_is_relative_and_overridable(tmp_path):
    write(tmp_path, "parent.json", MINI)
    child = write(tmp_path, "child.json", {"base": "parent.json", "train": {"total_steps": 7}})
    cfg = load_config(child)
    assert cfg["train"]["total_steps"] == 7 and cfg["train"]["batch_size"] == 4
    assert cfg["model"]["encoder"]["layers"] == 1


def test_base_cycle_is_an_error(tmp_path):
    write(tmp_path, "a.json", {"base": "b.json", **MINI})
    write(tmp_path, "b.json", {"base": "a.json"})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "a.json"))


def test_set_is_typed_like_the_value_it_replaces():
    cfg = json.loads(json.dumps(MINI))
    apply_set(cfg, "train.total_steps=30")
    apply_set(cfg, "model.encoder.layers=3.0")
    apply_set(cfg, "train.progress=true")
    apply_set(cfg, "data.sources.0.image_size=8")
    assert cfg["train"]["total_steps"] == 30 and isinstance(cfg["train"]["total_steps"], int)
    assert cfg["model"]["encoder"]["layers"] == 3 and cfg["train"]["progress"] is True
    assert cfg["data"]["sources"][0]["image_size"] == 8
    with pytest.raises(ConfigError, match="expected int"):
        apply_set(cfg, "train.total_steps=abc")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        apply_set(cfg, "trian.total_steps=3")


def test_misspelt_key_is_one_line_exit_2(tmp_path, cli):
    bad = json.loads(json.dumps(MINI))
    bad["model"]["encoder"]["haeds"] = bad["model"]["encoder"].pop("heads")
    path = write(tmp_path, "bad.json", bad)
    proc = cli("pretrain.py", "--config", path, "--output-dir", str(tmp_path / "run"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "model.encoder.haeds" in lines[0] and "did you mean 'heads'" in lines[0] and "bad.json" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing written on bad input


def test_unknown_type_and_wrong_type_name_the_path(tmp_path, cli):
    bad = json.loads(json.dumps(MINI))
    bad["model"]["objectives"]["c"]["target"]["type"] = "boltzman"
    proc = cli("pretrain.py", "--config", write(tmp_path, "t.json", bad))
    assert proc.returncode == 2 and "model.objectives.c.target.type" in proc.stderr
    assert "did you mean 'boltzmann'" in proc.stderr
    proc = cli("pretrain.py", "--config", write(tmp_path, "t.json", MINI), "--set", "model.encoder.layers=[1]")
    assert proc.returncode == 2 and "expected int" in proc.stderr and "Traceback" not in proc.stderr


def test_batch_size_must_split(tmp_path, cli):
    proc = cli("pretrain.py", "--config", write(tmp_path, "t.json", MINI), "--set", "train.grad_accum=3")
    assert proc.returncode == 2 and "train.batch_size" in proc.stderr


def test_dry_run_prints_parameters_and_flops(tmp_path, cli):
    proc = cli("pretrain.py", "--config", write(tmp_path, "t.json", MINI), "--dry-run", check=True)
    assert "# parameters per component" in proc.stdout and "FLOPs per step" in proc.stdout
    total = int(proc.stdout.split("\ntotal")[1].split()[0].replace(",", ""))
    assert total > 10_000
    assert not os.path.exists(os.path.join(tmp_path, "runs"))
