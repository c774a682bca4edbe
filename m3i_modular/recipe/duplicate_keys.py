"""Recipe text -> data, refusing a key given twice in one object (json and yaml would silently keep the last).

JSON: json's object_pairs_hook sees every pair; when one object repeats a key, a second pass over the (valid)
text finds where: the object's path and the two lines. YAML: a SafeLoader that checks each mapping's keys
(the `<<` merge key aside, whose merged keys may be overridden).
"""
from __future__ import annotations

import bisect
import json
from json.decoder import scanstring
from typing import Any, List, Optional, Tuple

from ..errors import ConfigError

_SPACE = " \t\r\n"


class _Repeated(Exception):
    pass


def _unique_pairs(pairs: List[Tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _Repeated(k)
        out[k] = v
    return out


def _message(key: str, where: Optional[str], first: int, second: int) -> str:
    place = "" if where is None else f" in {where}" if where else " at the top level"
    return (f"duplicate key '{key}'{place} (lines {first} and {second}): a recipe names each key once (only the "
            f"last would count); remove one")


def first_duplicate(text: str) -> Optional[Tuple[str, str, int, int]]:
    """(key, path of its object, first line, second line) of the first repeated key in valid JSON text."""
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    line = lambda pos: bisect.bisect_left(newlines, pos) + 1  # noqa: E731
    stack: List[dict] = []  # {"obj": bool, "path": str, "keys": {key: line}, "key": str, "index": int}
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            value, end = scanstring(text, i + 1)
            j = end
            while j < n and text[j] in _SPACE:
                j += 1
            top = stack[-1] if stack else None
            if top is not None and top["obj"] and j < n and text[j] == ":":
                if value in top["keys"]:
                    return value, top["path"], top["keys"][value], line(i)
                top["keys"][value], top["key"] = line(i), value
            i = end
            continue
        if c in "{[":
            parent = stack[-1] if stack else None
            if parent is None:
                path = ""
            elif parent["obj"]:
                path = f"{parent['path']}.{parent['key']}" if parent["path"] else parent["key"]
            else:
                path = f"{parent['path']}[{parent['index']}]"
            stack.append({"obj": c == "{", "path": path, "keys": {}, "key": "", "index": 0})
        elif c in "}]":
            stack.pop()
        elif c == "," and stack and not stack[-1]["obj"]:
            stack[-1]["index"] += 1
        i += 1
    return None


def load_json(text: str, path: str = "") -> Any:
    """json.loads that raises ConfigError (naming `path`) for a repeated key; json's own errors pass through."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except _Repeated as e:
        found = first_duplicate(text)
        key, where, a, b = found if found is not None else (str(e), "", 0, 0)
        raise ConfigError(_message(key, where, a, b), file=path) from None


def load_yaml(text: str, path: str = "") -> Any:
    """yaml.safe_load that raises ConfigError (naming `path`) for a repeated key."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: yaml itself refuses it below
                        continue
                    here = key_node.start_mark.line + 1
                    if first is not None:
                        raise ConfigError(_message(str(key), None, first, here), file=path)
                    seen[key] = here
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
