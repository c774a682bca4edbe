"""`pretrain.py --list`: every registry with its components and a one-line doc each, and the text helpers the
other listings share."""
import dataclasses
import importlib
import inspect
import json
import re
import sys
import textwrap
from typing import Any, Dict, List, Optional, Tuple

from ... import registry as _registry
from ...registry import BUILD_ARGS, Registry, _describe, keyword_params

# Importing these fills every registry (the package imports its component folders).
REGISTERING = ("m3i_modular", "m3i_modular.training.optim", "m3i_modular.training.schedules", "m3i_modular.selectors.selection",
               "m3i_modular.training.loggers")

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
        from ..config import import_plugins
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
    from .. import sections
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
