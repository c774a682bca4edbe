"""`pretrain.py --list-recipes [DIR]`: the recipe files with the first sentence of their "description"."""
import os
from typing import Optional, Tuple

from ...errors import ConfigError
from .listing import _table, first_sentence


def default_recipe_dir() -> str:
    """The repository's models/ (beside the package), else ./models."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "models")
    return here if os.path.isdir(here) else "models"


def _description(path: str, seen: Tuple[str, ...] = ()) -> str:
    from ..config import _read
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
