"""`pretrain.py --list`, `--list-recipes [DIR]` and `--explain NAME`: what can go into a recipe.

--list prints every registry (registry.py) with its components and a one-line doc each; --list-recipes the
recipe files with the first sentence of their "description"; --explain a component's keys, types and defaults
(or a recipe section's). The keys are read with `registry.keyword_params`, the very function `check_kwargs`
validates a recipe with, so --explain shows exactly what the validator accepts. Build arguments -- what the
builder passes and a recipe may not write (a decoder's in_dim) -- are listed apart.

--list and --explain import the components (each registers itself on import) and the --import plugins, so a
plugin's components are listed and explained like the package's; no model, data or recipe is built or read.
"""
import dataclasses
import difflib
import importlib
import inspect
import json
import os
import re
import sys
import textwrap
from typing import Any, Dict, List, Optional, Tuple

from . import registry as _registry
from .errors import ConfigError
from .registry import BUILD_ARGS, Registry, _describe, keyword_params

# Importing these fills every registry (the package imports its component folders).
REGISTERING = ("m3i_modular", "m3i_modular.optim", "m3i_modular.schedules", "m3i_modular.selection",
               "m3i_modular.loggers")

# Where a recipe names a component of each family.
WHERE = {
    "embedding": 'model.embedding: {"type": NAME, ...}, or one named part of a summed embedding '
                 '{"word": {...}, "position": {...}}',
    "encoder": 'model.encoder: {"type": NAME, ...}',
    "target_embedding": 'model.objectives.<objective>.target_embedding: {"type": NAME, ...}, or '
                        'shared.<name> (referenced as "@<name>")',
    "decoder": 'model.objectives.<objective>.decoder: {"type": NAME, ...}',
    "target": 'model.objectives.<objective>.target: {"type": NAME, ...}',
    "batch_transform": 'model.batch_transforms: [{"type": NAME, ...}]',
    "selector": 'model.objectives.<objective>.select: NAME (a name, no keys)',
    "dataset": 'data.sources: [{"type": NAME, "weight": 1.0, ...}]',
    "transform": 'views.<view>: [{"type": NAME, ...}]',
    "tokenizer": 'tokenizer: {"type": NAME, ...}',
    "optimizer": 'optim: {"type": NAME, "lr": ..., ...} (--explain optim for the section\'s own keys)',
    "schedule": 'schedule: {"type": NAME, ...}',
    "logger": 'train.loggers: [NAME, ...] (names only: its keys keep their defaults)',
}

# Build arguments each family's builder passes (model.py: decoders get in_dim/out_dim, target embeddings are
# offered encoder_dim; trainer.py: loggers get output_dir); optimizers and schedules: their section's
# `supplied` (sections.py).
BUILDER_PASSES = {"decoder": ("in_dim", "out_dim"), "target_embedding": ("encoder_dim",), "logger": ("output_dir",)}

# Families whose entries are called by name, not built from an object with keys.
CALLED = {"selector": "the model calls it with (enc, batch)"}

_ABBREV = ("al", "e.g", "i.e", "cf", "vs", "etc", "Sec", "App", "Fig", "Eq", "Tab", "No", "approx", "resp")


# -- text ---------------------------------------------------------------------------------------------------

def first_sentence(text: Optional[str]) -> str:
    """The first sentence of the first paragraph of `text`, on one line."""
    if not text:
        return ""
    para = re.split(r"\n\s*\n", inspect.cleandoc(text).strip(), maxsplit=1)[0]
    para = " ".join(para.split())
    for m in re.finditer(r"[.!?](?=\s+[A-Z`\"'(\[])", para):
        word = re.search(r"([\w.]+)$", para[:m.start()])
        if m.group() == "." and word and word.group(1) in _ABBREV:
            continue
        return para[:m.end()]
    return para


def _opens_with_key(doc: str, keys) -> bool:
    """A docstring that opens by documenting a key ("act: ...", "`to`: ...") is no summary."""
    m = re.match(r"\s*`?(\w+)`?\s*:", doc)
    return bool(m) and m.group(1) in keys


def one_line(reg: Registry, name: str) -> str:
    """The component's one-line doc: the first sentence of its own docstring; of its module's when it has
    none, or when its docstring opens by documenting a key (and the module is about it: it registers nothing
    else, or names it)."""
    obj = reg.get(name)
    own = (obj.__doc__ or "").strip()  # a class's own: __doc__ is not inherited
    if own and not _opens_with_key(own, keyword_params(obj)[0]):
        return first_sentence(own)
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    mod_doc = ((module.__doc__ if module else "") or "").strip()
    if mod_doc:
        siblings = [n for r in registries().values() for n, o in r._entries.items()
                    if getattr(o, "__module__", None) == obj.__module__]
        if siblings == [name] or re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", first_sentence(mod_doc)):
            return first_sentence(mod_doc)
    return first_sentence(own)


def _type(ann: Any) -> str:
    if ann is inspect.Parameter.empty:
        return "any"
    text = ann if isinstance(ann, str) else _describe(ann)
    text = re.sub(r"(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # torch.nn.modules.module.Module -> Module
    text = text.replace("NoneType", "None")
    if text == "Module":
        return 'Module ("@part" reference)'
    return text


def _value(v: Any) -> str:
    try:
        return json.dumps(v)
    except (TypeError, ValueError):  # not JSON: a recipe cannot write it, but show it
        return repr(v)


def _table(rows: List[Tuple[str, ...]], indent: str = "  ", width: int = 120) -> List[str]:
    """Aligned columns; the last one wraps, its continuation lines aligned under it."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        head = indent + "  ".join(c.ljust(w) for c, w in zip(r, widths))
        if not r[-1]:
            out.append(head.rstrip())
            continue
        col = len(head) + 2
        wrapped = textwrap.wrap(r[-1], width=max(width - col, 40)) or [""]
        out.append(head + "  " + wrapped[0])
        out += [" " * col + line for line in wrapped[1:]]
    return out


# -- registries ---------------------------------------------------------------------------------------------

def load_components(imports: Optional[List[str]] = None) -> None:
    """Import what registers the components, then the user's plugins (--import)."""
    for mod in REGISTERING:
        importlib.import_module(mod)
    if imports:
        from .config import import_plugins
        import_plugins(imports)


def registries() -> Dict[str, Registry]:
    """Every registry of registry.py, by family, in the order they are declared."""
    return {r.family: r for r in vars(_registry).values() if isinstance(r, Registry)}


def _aliases() -> Dict[str, Registry]:
    """A family by its name ("decoder") or its registry's ("decoders")."""
    found = [(var, r) for var, r in vars(_registry).items() if isinstance(r, Registry)]
    return {**{var.lower(): r for var, r in found}, **{r.family: r for _, r in found}}


def _sections() -> Dict[str, type]:
    """Every recipe section spec (sections.py) by the name --explain takes: its top-level key, else what
    it configures ("objective", "lr_scaling", "param_groups")."""
    from . import sections
    out: Dict[str, type] = {}
    todo = list(sections.Section.__subclasses__())
    while todo:
        cls = todo.pop(0)
        todo += cls.__subclasses__()
        name = cls.section or re.sub(r"^(an?|the) ", "", cls.what).split(" ")[0] or cls.__name__.lower()
        out.setdefault(name, cls)
    return out


def _default(f: Any) -> Any:
    """A dataclass field's default (its factory's value), or inspect.Parameter.empty."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default


def build_args(reg: Registry) -> Tuple[Dict[str, str], Dict[str, Tuple[str, Any]]]:
    """(what the builder passes a component of this family, not recipe keys, with what each is; keys its
    section owns and checks, like optim's lr: (section, default) by key)."""
    passed = {n: BUILD_ARGS.get(n, "a build argument") for n in BUILDER_PASSES.get(reg.family, ())}
    owned: Dict[str, Tuple[str, Any]] = {}
    for spec in _sections().values():
        if spec.component is reg:
            passed.update({n: f"passed by the program (the {spec.section} section's rule)" for n in spec.supplied})
            owned.update({f.name: (spec.section, _default(f)) for f in dataclasses.fields(spec) if f.init})
    return passed, owned


def list_components() -> str:
    lines = []
    for family, reg in registries().items():
        lines.append(f"{family}  ({WHERE.get(family, 'registered by a plugin').split(':')[0]})")
        names = reg.names()
        if not names:
            lines.append("  (none)")
            continue
        lines += _table([(n, one_line(reg, n) or "-") for n in names])
        lines.append("")
    lines.append(f"recipe sections: {', '.join(sorted(_sections()))}")
    lines.append("python pretrain.py --explain NAME (or FAMILY.NAME): a component's or section's keys, types, defaults")
    return "\n".join(lines)


# -- recipes ------------------------------------------------------------------------------------------------

def default_recipe_dir() -> str:
    """The repository's models/ (beside the package), else ./models."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
    return here if os.path.isdir(here) else "models"


def _description(path: str, seen: Tuple[str, ...] = ()) -> str:
    from .config import _read
    data = _read(path)
    desc = data.get("description")
    base = data.get("base")
    if not desc and isinstance(base, str) and os.path.realpath(path) not in seen:  # inherited from its base
        return _description(os.path.join(os.path.dirname(path), base), seen + (os.path.realpath(path),))
    return desc if isinstance(desc, str) else ""


def list_recipes(folder: Optional[str] = None) -> str:
    folder = folder or default_recipe_dir()
    if not os.path.isdir(folder):
        raise ConfigError(f"--list-recipes: no folder '{folder}'")
    files = sorted(f for f in os.listdir(folder) if f.endswith((".json", ".yaml", ".yml")))
    if not files:
        raise ConfigError(f"--list-recipes: no recipe files (*.json, *.yaml) in '{folder}'")
    rows = []
    for f in files:
        try:
            text = first_sentence(_description(os.path.join(folder, f))) or "-"
        except ConfigError as e:  # one broken file does not hide the others
            text = f"(unreadable: {e.message})"
        rows.append((f, text))
    shown = os.path.relpath(folder) if not os.path.relpath(folder).startswith("..") else folder
    return "\n".join([f"recipes in {shown}/  (python pretrain.py --config {os.path.join(shown, rows[0][0])})"]
                      + _table(rows))


# -- explain ------------------------------------------------------------------------------------------------

def _resolve(name: str) -> Tuple[str, Any]:
    """NAME, FAMILY.NAME, section.NAME or FAMILY -> ("component", (reg, name)) / ("section", (name, cls)) /
    ("family", reg). Unknown or ambiguous: one ConfigError line naming the candidates."""
    aliases, sections = _aliases(), _sections()
    if "." in name:
        head, tail = name.split(".", 1)
        if head == "section":
            if tail in sections:
                return "section", (tail, sections[tail])
            raise ConfigError(f"--explain: no section '{tail}'{_registry.nearest(tail, sections)}")
        if head not in aliases:
            raise ConfigError(f"--explain {name}: no family '{head}' (families: {', '.join(registries())}; "
                              f"or section.<name>)")
        reg = aliases[head]
        if tail not in reg:
            raise ConfigError(f"--explain {name}: no {reg.family} '{tail}'{_registry.nearest(tail, reg.names())}")
        return "component", (reg, tail)
    found: List[Tuple[str, Any]] = [("component", (r, name)) for r in registries().values() if name in r]
    if name in sections:
        found.append(("section", (name, sections[name])))
    if len(found) == 1:
        return found[0]
    if found:
        names = [f"{v[0].family}.{v[1]}" if k == "component" else f"section.{v[0]}" for k, v in found]
        raise ConfigError(f"--explain {name} is ambiguous: {', '.join(names)} (name one as FAMILY.NAME)")
    if name in aliases:
        return "family", aliases[name]
    everything = {f"{r.family}.{n}": n for r in registries().values() for n in r.names()}
    everything.update({f"section.{s}": s for s in sections})
    close = difflib.get_close_matches(name, list(everything.values()) + list(everything), n=12, cutoff=0.6)
    cands = sorted({q for q, bare in everything.items() for c in close if c in (q, bare)})
    hint = f"candidates: {', '.join(cands[:6])}" if cands else "python pretrain.py --list shows every component"
    raise ConfigError(f"--explain: no component or section '{name}' ({hint})")


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


def _wrap(text: str, indent: str = "  ", width: int = 120) -> List[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + "  ")


def _doc_lines(doc: Optional[str]) -> List[str]:
    """A docstring, indented; a line longer than 120 characters (a one-line docstring) wrapped."""
    if not doc:
        return []
    return [w for line in inspect.cleandoc(doc).splitlines() for w in (_wrap(line) if line.strip() else [""])]


def explain_component(reg: Registry, name: str) -> str:
    obj = reg.get(name)
    lines = [f"{reg.family} '{name}'  ({_origin(obj)})"]
    if reg.family in WHERE:
        lines += _wrap(f"in a recipe: {WHERE[reg.family].replace('NAME', json.dumps(name))}")
    own = obj.__doc__ or ""
    summary = one_line(reg, name)
    if summary and not (own and inspect.cleandoc(own).startswith(summary.split(" ")[0])):
        lines += _wrap(summary)
    lines += _doc_lines(own)
    if reg.family in CALLED:
        lines += ["", f"  no keys: {CALLED[reg.family]}"]
        return "\n".join(lines)
    params, hints, takes_any = keyword_params(obj)
    passed, owned = build_args(reg)
    rows = [("key", "type", "default", "")]
    for key, p in params.items():
        if key in passed:
            continue
        if key in owned:  # checked as the section's own key, with the section's default
            section, default = owned[key]
            rows.append((key, _type(hints[key]), _value(default), f"the {section} section's key"))
            continue
        default = "required" if p.default is inspect.Parameter.empty else _value(p.default)
        rows.append((key, _type(hints[key]), default, ""))
    lines.append("")
    lines += _table(rows) if len(rows) > 1 else ["  no keys"]
    if takes_any:
        lines.append("  and any other key (it takes **kwargs)")
    given = [(k, _type(hints[k]) if k in hints else "", v) for k, v in passed.items() if k in params]
    if given:
        lines += ["", "  build arguments (passed by the builder; not recipe keys):"]
        lines += _table(given, indent="    ")
    return "\n".join(lines)


def _field_comments(cls: type) -> Dict[str, str]:
    """The trailing `# comment` of each field line of a section spec: its key's documentation."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in src.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.*)$", line)
        if m and m.group(2):
            out[m.group(1)] = m.group(2).strip()
    return out


def explain_section(name: str, cls: type) -> str:
    lines = [f"section '{name}'  ({_origin(cls)})"]
    if cls.section:
        lines.append(f'  in a recipe: "{cls.section}": {{...}}')
    lines += _doc_lines(cls.__doc__)
    params, hints, _ = keyword_params(cls)
    defaults = {f.name: _default(f) for f in dataclasses.fields(cls)}
    notes = _field_comments(cls)
    rows = [("key", "type", "default", "")]
    for key in params:
        default = "required" if defaults[key] is inspect.Parameter.empty else _value(defaults[key])
        rows.append((key, _type(hints[key]), default, notes.get(key, "")))
    lines += [""] + _table(rows)
    if cls.component is not None:
        reg = cls.component
        lines += ["", f"  other keys are the {reg.family}'s (--explain {reg.family}.NAME): "
                      f"{', '.join(reg.names()) or '(none registered)'}"]
    return "\n".join(lines)


def explain_family(reg: Registry) -> str:
    lines = [f"{reg.family}: {WHERE.get(reg.family, 'registered by a plugin')}"]
    lines += _table([(n, one_line(reg, n) or "-") for n in reg.names()]) if reg.names() else ["  (none)"]
    lines.append(f"python pretrain.py --explain {reg.family}.NAME: a component's keys")
    return "\n".join(lines)


def explain(name: str) -> str:
    kind, what = _resolve(name)
    if kind == "component":
        return explain_component(*what)
    if kind == "section":
        return explain_section(*what)
    return explain_family(what)


def run(args) -> int:
    """The discovery flags of pretrain.py (cli.py dispatches here before reading any recipe)."""
    if args.list or args.explain is not None:
        load_components(args.imports)
    out: List[str] = []
    if args.list:
        out.append(list_components())
    if args.list_recipes is not None:
        out.append(list_recipes(args.list_recipes or None))
    if args.explain is not None:
        out.append(explain(args.explain))
    try:
        print("\n\n".join(out))
        sys.stdout.flush()
    except BrokenPipeError:  # `--list | head`: the reader left, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
