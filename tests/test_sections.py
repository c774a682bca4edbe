"""One config style for every section: the same check (keys, types, values), the same one-line error naming the
recipe file, the JSON path and the nearest valid key, the same defaults whether a section is absent or empty."""
import copy
import json

import pytest

from m3i_modular.training import optim as _optim, schedules  # noqa: F401  (register the optimizers and schedules)
from m3i_modular.recipe.config import load_config
from m3i_modular.errors import ConfigError
from m3i_modular.run import build_run
from m3i_modular.recipe.sections import (DataConfig, EvalConfig, ModelConfig, ObjectiveConfig, OptimConfig, Recipe,
                                  ScheduleConfig, TrainConfig)

from test_config import MINI


def _write(tmp_path, data, name="recipe.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


def _edit(path, value):
    """MINI with `value` set at the dotted `path` (a list index as a number)."""
    cfg = copy.deepcopy(MINI)
    *head, last = path.split(".")
    node = cfg
    for k in head:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    node[last] = value
    return cfg


# (dotted key set in MINI, value, JSON path in the error, what the error must say)
CASES = [
    ("train.precison", "bf16", "train.precison", "did you mean 'precision'"),
    ("train.precision", "bf8", "train.precision", "did you mean 'bf16'"),
    ("train.log_every", 0, "train.log_every", "log_every must be >= 1"),
    ("train.device", "gpu", "train.device", "expected one of 'auto', 'cpu', 'cuda'"),
    ("optim.beta", [0.9, 0.95], "optim.beta", "did you mean 'betas'"),
    ("optim.lr", "fast", "optim.lr", "expected float"),
    ("optim.lr_scaling", {"rul": "sqrt"}, "optim.lr_scaling.rul", "did you mean 'rule'"),
    ("optim.param_groups", [{"match": "encoder.*", "lr_mul": 0.5}], "optim.param_groups[0].lr_mul",
     "did you mean 'lr_mult'"),
    ("optim.type", "adamx", "optim.type", "did you mean 'adamw'"),
    ("schedule.warmup", 3, "schedule.warmup", "did you mean 'warmup_steps'"),
    ("schedule.type", "cosin", "schedule.type", "did you mean 'cosine'"),
    ("eval.knn_evry", 2, "eval.knn_evry", "did you mean 'knn_every'"),
    ("data.text_lenght", 8, "data.text_lenght", "did you mean 'text_length'"),
    ("data.max_skip_share", 2.0, "data.max_skip_share", "<= 1"),
    ("model.mask_mod", "drop", "model.mask_mod", "did you mean 'mask_mode'"),
    ("model.mask_mode", "zero", "model.mask_mode", "expected one of 'drop', 'replace'"),
    ("model.objectives.c.weigth", 1.0, "model.objectives.c.weigth", "did you mean 'weight'"),
    ("model.objectives.c.loss_on", "hidden", "model.objectives.c.loss_on", "expected one of"),
]


@pytest.mark.parametrize("key,value,where,what", CASES, ids=[c[0] for c in CASES])
def test_every_section_fails_the_same_way(tmp_path, key, value, where, what):
    path = _write(tmp_path, _edit(key, value), "bad.json")
    with pytest.raises(ConfigError) as err:
        build_run(load_config(path))
    line = str(err.value)
    assert line.startswith(f"{path}:{where}: ") and what in line and "\n" not in line, line


def test_top_level_keys_go_through_the_same_check(tmp_path):
    bad = dict(copy.deepcopy(MINI), trian={"total_steps": 3})
    with pytest.raises(ConfigError, match=r"bad\.json:trian: unknown key 'trian' for recipe \(did you mean 'train'"):
        load_config(_write(tmp_path, bad, "bad.json"))
    missing = {k: v for k, v in MINI.items() if k != "data"}
    with pytest.raises(ConfigError, match=r"bad\.json:data: missing key 'data' for recipe"):
        load_config(_write(tmp_path, missing, "bad.json"))


@pytest.mark.parametrize("spec", [OptimConfig, ScheduleConfig, EvalConfig])
def test_an_absent_section_is_the_empty_section(spec):
    assert spec.from_config(None) == spec.from_config({})
    assert spec.from_config(None).options == spec.from_config({}).options == {}


def test_a_schedule_without_type_is_the_missing_schedule():
    """(Before: a section without "type" meant cosine, a missing section constant.)"""
    run_absent = ScheduleConfig.from_config(None)
    run_untyped = ScheduleConfig.from_config({"warmup_steps": 4})
    assert run_absent.type == run_untyped.type == "constant"
    s = schedules.Schedule(run_untyped, total_steps=10)
    assert [s.factor(i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_component_keys_are_checked_against_the_named_component():
    opt = OptimConfig.from_config({"type": "sgd", "lr": 0.1, "momentum": 0.5, "nesterov": True})
    assert opt.options == {"momentum": 0.5, "nesterov": True} and opt.lr == 0.1
    with pytest.raises(ConfigError, match=r"optim\.betas: unknown key 'betas' for optim \(valid: .*momentum"):
        OptimConfig.from_config({"type": "sgd", "betas": [0.9, 0.99]})
    with pytest.raises(ConfigError, match=r"optim\.momentum: expected float for 'momentum' of optimizer 'sgd'"):
        OptimConfig.from_config({"type": "sgd", "momentum": "high"})
    sched = ScheduleConfig.from_config({"type": "cosine", "warmup_steps": 2, "min_factor": 0.1})
    assert sched.options == {"warmup_steps": 2, "min_factor": 0.1}
    with pytest.raises(ConfigError, match=r"schedule\.total_steps: unknown key 'total_steps'"):
        ScheduleConfig.from_config({"type": "cosine", "total_steps": 10})  # train.total_steps is the budget


def test_nested_sections_become_specs():
    opt = OptimConfig.from_config({"lr": 1e-3, "lr_scaling": {"rule": "sqrt", "ref_batch": 64},
                                   "param_groups": [{"match": "embedding.*", "lr_mult": 0.0}]})
    assert opt.lr_scaling.rule == "sqrt" and opt.lr_scaling.ref_batch == 64
    assert opt.param_groups[0].match == "embedding.*" and opt.param_groups[0].weight_decay is None
    assert _optim.scaled_lr(opt.lr, 256, opt.lr_scaling) == pytest.approx(2e-3)


def test_context_rules_name_the_key():
    with pytest.raises(ConfigError, match=r"train\.batch_size: batch_size 4 does not split over 2 ranks"):
        TrainConfig.from_config({"total_steps": 1, "batch_size": 4, "grad_accum": 3}, world=2)
    with pytest.raises(ConfigError, match=r"eval\.knn_every: .*multiple of train\.log_every \(3\)"):
        EvalConfig.from_config({"knn_every": 4}, log_every=3)


def test_specs_document_every_default():
    tc = TrainConfig.from_config({"total_steps": 5, "batch_size": 8})
    assert tc.as_dict()["precision"] == "fp32" and tc.loggers == ["jsonl"] and tc.save_every == 0
    assert DataConfig.from_config({"sources": [{"type": "synthetic_shapes"}]}).epoch_size == 0
    assert ModelConfig.from_config(MINI["model"]).mask_mode == "drop"
    assert ObjectiveConfig.from_config(MINI["model"]["objectives"]["c"]).weight == 1.0
    assert Recipe.from_config(MINI).optim is None


def test_param_group_matching_nothing_is_one_line_and_writes_nothing(tmp_path, cli):
    bad = _edit("optim", {"lr": 1e-3, "param_groups": [{"match": "encoder.nothing.*", "lr_mult": 0.5}]})
    path = _write(tmp_path, bad, "pg.json")
    proc = cli("pretrain.py", "--config", path, "--output-dir", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"error: {path}:optim.param_groups[0].match: param_groups rule matches no "
                                   f"parameter: 'encoder.nothing.*'")
    assert not (tmp_path / "run").exists()
