"""`pretrain.py --explain NAME`: a component's keys, types and defaults (or a recipe section's), read with
`registry.keyword_params`, the very function `check_kwargs` validates a recipe with."""
import dataclasses
import difflib
import inspect
import json
import re
import textwrap
from typing import Any, Dict, List, Optional, Tuple

from ... import registry as _registry
from ...errors import ConfigError
from ...registry import Registry, keyword_params

from .listing import (CALLED, WHERE, _aliases, _default, _sections, _table, _type, _value, build_args,
                      one_line, registries)


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
