"""`pretrain.py --list`, `--list-recipes [DIR]` and `--explain NAME`: what can go into a recipe.

--list prints every registry (registry.py) with its components and a one-line doc each; --list-recipes the
recipe files with the first sentence of their "description"; --explain a component's keys, types and defaults
(or a recipe section's). The keys are read with `registry.keyword_params`, the very function `check_kwargs`
validates a recipe with, so --explain shows exactly what the validator accepts. Build arguments -- what the
builder passes and a recipe may not write (a decoder's in_dim) -- are listed apart.

--list and --explain import the components (each registers itself on import) and the --import plugins, so a
plugin's components are listed and explained like the package's; no model, data or recipe is built or read.
"""
import os
import sys
from typing import List

from .explain import explain
from .listing import CALLED, _sections, list_components, load_components, one_line  # noqa: F401  (public)
from .recipes import default_recipe_dir, list_recipes  # noqa: F401  (public)


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
