"""pretrain.py --list / --list-recipes / --explain: every registry and recipe is listed, a component's keys come
from the signatures the validator reads, and a wrong name is one error line. None of them needs --config."""
import glob
import json
import os
import re

import pytest

from cli_utils import REPO
from m3i_modular.recipe import discover
from m3i_modular import registry
from m3i_modular.cli import main
from m3i_modular.registry import DECODERS, TARGETS, Registry, keyword_params


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def every_registry():
    return [r for r in vars(registry).values() if isinstance(r, Registry)]


def rows(text):
    """The table rows of an --explain output: {key: (type, default, note)} (header and build arguments apart)."""
    keys, build, section = {}, {}, None
    for line in text.splitlines():
        if line.startswith("  key "):
            section = keys
            continue
        if line.startswith("  build arguments"):
            section = build
            continue
        if section is keys:
            m = re.match(r"  (\w+)\s{2,}(\S.*?)\s{2,}(\S.*?)(?:\s{2,}(\S.*))?$", line)
            if m:
                keys[m.group(1)] = (m.group(2), m.group(3), m.group(4) or "")
        elif section is build:
            m = re.match(r"    (\w+)\s{2,}(\S+)\s{2,}(.*)$", line)
            if m:
                build[m.group(1)] = (m.group(2), m.group(3))
    return keys, build


def test_list_names_every_registry_and_component_without_a_config(cli):
    proc = cli("pretrain.py", "--list", check=True)  # the real entry point: no --config, no recipe read
    discover.load_components()
    for reg in every_registry():
        assert re.search(rf"^{reg.family}  \(", proc.stdout, re.M), reg.family
        assert reg.names(), f"registry {reg.family} is empty after loading the package"
        for name in reg.names():
            assert re.search(rf"^  {re.escape(name)}(  |$)", proc.stdout, re.M), f"{reg.family}.{name}"
    # a known component with its one-line doc (a class without its own docstring: its module's first sentence)
    assert re.search(r"^  pool +Pool \+ head: a global prediction", proc.stdout, re.M)
    assert re.search(r"^  wandb +Weights & Biases", proc.stdout, re.M)


def test_one_line_doc_is_a_summary_not_a_key_description():
    discover.load_components()
    # the transformer's class docstring opens with "act: ..." (a key): its module's first sentence is shown
    assert discover.one_line(registry.ENCODERS, "transformer").startswith("Transformer encoder")
    assert discover.one_line(registry.SELECTORS, "all") == "Every token of every row."


def test_list_recipes_lists_every_recipe_with_its_first_sentence(capsys):
    rc, out, _ = run(capsys, "--list-recipes")
    assert rc == 0
    files = sorted(glob.glob(os.path.join(REPO, "models", "*.json")))
    assert files
    for path in files:
        with open(path) as f:
            desc = json.load(f)["description"]
        line = next((ln for ln in out.splitlines() if ln.startswith(f"  {os.path.basename(path)} ")), None)
        assert line is not None, os.path.basename(path)
        assert " ".join(desc.split()[:3]) in line
    assert "mae_vit.json" in out and "MAE (He et al., CVPR 2022) at CPU size" in out


def test_list_recipes_of_a_folder_inherits_descriptions_and_survives_a_broken_file(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"description": "Alpha recipe. More words.", "model": {}}))
    (tmp_path / "b.json").write_text(json.dumps({"base": "a.json"}))
    (tmp_path / "c.json").write_text("{not json")
    rc, out, _ = run(capsys, "--list-recipes", str(tmp_path))
    assert rc == 0
    assert re.search(r"^  a\.json +Alpha recipe\.$", out, re.M)
    assert re.search(r"^  b\.json +Alpha recipe\.$", out, re.M)
    assert re.search(r"^  c\.json +\(unreadable: invalid JSON", out, re.M)


def test_explain_shows_keys_types_defaults_and_build_arguments_apart(capsys):
    rc, out, _ = run(capsys, "--explain", "decoder.pool")
    assert rc == 0 and out.startswith("decoder 'pool'")
    keys, build = rows(out)
    assert keys["pool"] == ("str", '"mean"', "")
    assert keys["layers"][:2] == ("int", "2")
    assert set(build) == {"in_dim", "out_dim"} and not {"in_dim", "out_dim"} & set(keys)
    # the same keys the validator checks
    params, _, _ = keyword_params(DECODERS.get("pool"))
    assert set(keys) == set(params) - {"in_dim", "out_dim"}
    rc2, out2, _ = run(capsys, "--explain", "pool")  # the bare name, unique
    assert rc2 == 0 and out2 == out
    _, out3, _ = run(capsys, "--explain", "encoder.transformer")
    keys3, _ = rows(out3)
    assert keys3["layers"] == ("int", "required", "") and keys3["causal"][:2] == ("bool", "false")


def test_explain_sections_and_section_owned_keys(capsys):
    _, out, _ = run(capsys, "--explain", "train")
    keys, _ = rows(out)
    assert keys["total_steps"] == ("int", "required", "the only step budget; schedules read it")
    assert keys["loggers"][:2] == ("List[str]", '["jsonl"]')
    _, out, _ = run(capsys, "--explain", "optimizer.adamw")
    keys, build = rows(out)
    assert keys["lr"] == ("float", "0.0001", "the optim section's key") and "params" in build


def test_explain_every_component_and_section_answers(capsys):
    discover.load_components()
    for reg in every_registry():
        for name in reg.names():
            rc, out, err = run(capsys, "--explain", f"{reg.family}.{name}")
            assert rc == 0 and out.startswith(f"{reg.family} '{name}'"), (reg.family, name, err)
            if reg.family in discover.CALLED:
                continue
            keys, build = rows(out)
            params, _, _ = keyword_params(reg.get(name))
            assert set(keys) | set(build) == set(params), (reg.family, name)
    for name in discover._sections():
        rc, out, err = run(capsys, "--explain", f"section.{name}")
        assert rc == 0 and out.startswith(f"section '{name}'"), err


@pytest.mark.parametrize("name, expect", [
    ("pol", "no component or section 'pol' (candidates: decoder.pool)"),
    ("decoder.pol", "no decoder 'pol' (did you mean 'pool'?)"),
    ("nosuchthing", "python pretrain.py --list shows every component"),
    ("foo.pool", "no family 'foo'"),
])
def test_explain_unknown_name_is_one_error_line(capsys, name, expect):
    rc, out, err = run(capsys, "--explain", name)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and expect in err


def test_explain_ambiguous_name_lists_the_candidates(capsys):
    discover.load_components()

    class Pool:  # a plugin target that shares the decoder's name
        def __init__(self, *, scale: float = 1.0):
            pass

    TARGETS.register("pool")(Pool)
    try:
        rc, _, err = run(capsys, "--explain", "pool")
        assert rc == 2 and err.count("\n") == 1
        assert "ambiguous: decoder.pool, target.pool" in err
        rc, out, _ = run(capsys, "--explain", "target.pool")
        assert rc == 0 and rows(out)[0]["scale"] == ("float", "1.0", "")
    finally:
        del TARGETS._entries["pool"]


def test_without_config_or_discovery_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "--config" in capsys.readouterr().err
