"""Recipes: JSON (or YAML) files with "base" inheritance, "imports" plugins, typed --set overrides, and
validation that names the file, the JSON path and the nearest valid key. What each section may hold is
in sections.py."""
import copy
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import duplicate_keys
from ..errors import ConfigError
from ..registry import config_path, nearest
from .sections import Recipe


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"no such recipe file (check the path; recipes live in models/)", file=path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the recipe ({e.strerror})", file=path) from None
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}): a recipe is a JSON or YAML "
                          f"file", file=path) from None
    try:
        if path.endswith((".yaml", ".yml")):
            data = duplicate_keys.load_yaml(text, path)  # a key given twice is an error, not the last one
        else:
            data = duplicate_keys.load_json(text, path)
    except ConfigError:
        raise
    except json.JSONDecodeError as e:
        raise ConfigError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", file=path) from None
    except Exception as e:  # yaml's errors carry their position in problem_mark
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
        hint = " (YAML indents with spaces, never tabs)" if "\t" in text and "tab" in str(e).lower() else ""
        raise ConfigError(f"invalid YAML{where}: {what}{hint}", file=path) from None
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a JSON object", file=path)
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """`over` wins; nested objects merge; a null in `over` deletes the key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _load_with_bases(path: str, chain: Tuple[str, ...] = ()) -> dict:
    real = os.path.realpath(path)
    if real in chain:
        cycle = " -> ".join(os.path.basename(p) for p in chain + (real,))
        raise ConfigError(f"'base' inheritance forms a cycle: {cycle}", file=path, path="base")
    data = _read(path)
    base = data.pop("base", None)
    if base is None:
        return data
    bases = base if isinstance(base, list) else [base]
    merged: dict = {}
    for b in bases:
        if not isinstance(b, str):
            raise ConfigError(f"'base' names a recipe file, got {b!r}", file=path, path="base")
        bpath = b if os.path.isabs(b) else os.path.join(os.path.dirname(path), b)
        merged = deep_merge(merged, _load_with_bases(bpath, chain + (real,)))
    return deep_merge(merged, data)


def import_plugins(modules: Iterable[str], *, file: str = "") -> None:
    """Import user modules (dotted names or .py paths) so their components register themselves."""
    for i, mod in enumerate(modules):
        try:
            if mod.endswith(".py"):
                name = "m3i_plugin_" + os.path.splitext(os.path.basename(mod))[0]
                if name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(name, mod)
                if spec is None or not os.path.isfile(mod):
                    raise ModuleNotFoundError(f"no file {mod}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(mod)
        except ModuleNotFoundError as e:
            raise ConfigError(f"cannot import plugin '{mod}': {e} (is it on PYTHONPATH?)",
                              file=file, path=f"imports[{i}]") from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_set(cfg: dict, assignment: str) -> None:
    """--set dotted.key=value, typed like the value it replaces."""
    if "=" not in assignment:
        raise ConfigError(f"--set takes key=value, got '{assignment}'")
    key, text = assignment.split("=", 1)
    parts = key.split(".")
    node: Any = cfg
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
            continue
        if not isinstance(node, dict) or p not in node:
            opts = node.keys() if isinstance(node, dict) else []
            raise ConfigError(f"--set {key}: no key '{p}' at '{'.'.join(parts[:i]) or '(top)'}'{nearest(p, opts)}")
        node = node[p]
    last = parts[-1]
    new = _parse_value(text)
    if isinstance(node, list) and last.isdigit():
        last = int(last)
        if last >= len(node):
            raise ConfigError(f"--set {key}: index {last} is past the end of a list of {len(node)}")
    elif not isinstance(node, dict):
        raise ConfigError(f"--set {key}: '{'.'.join(parts[:-1])}' is not an object")
    old = node[last] if (isinstance(node, list) or last in node) else None
    if old is not None:
        new = _coerce(new, old, key, text)
    node[last] = new


def _coerce(new: Any, old: Any, key: str, text: str) -> Any:
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
    elif isinstance(old, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
        if isinstance(new, float) and new.is_integer():
            return int(new)
    elif isinstance(old, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
    elif isinstance(old, str):
        return text if not isinstance(new, str) else new
    elif isinstance(old, (list, dict)):
        if isinstance(new, type(old)):
            return new
    else:
        return new
    raise ConfigError(f"--set {key}: expected {type(old).__name__} like the current value {old!r}, got '{text}'")


def load_config(path: str, *, overrides: Optional[List[str]] = None,
                imports: Optional[List[str]] = None) -> Dict[str, Any]:
    """Read a recipe with its bases, apply --set overrides, check its top-level keys (sections.Recipe), import
    its plugins. Each section's own keys are checked where it is built (run.build_run)."""
    cfg = _load_with_bases(path)
    for a in overrides or []:
        apply_set(cfg, a)
    with config_path("", file=path, absolute=True):
        recipe = Recipe.from_config(cfg)
    import_plugins(list(recipe.imports) + list(imports or []), file=path)
    cfg["_file"] = path
    return cfg


def dump_config(cfg: dict) -> str:
    return json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}, indent=2, sort_keys=False)
