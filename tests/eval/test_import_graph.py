"""No import circles in the library: no module of m3i_modular imports, directly or indirectly, a module that
imports it back -- read from the source (function-level imports count), at two grains:

- modules (importing a.b.c also runs the packages a.b it passes through, unless the importer lives in them);
- the library's top-level parts (m3i_modular.eval, m3i_modular.inference, m3i_modular.data, ...): a part that
  imports another may not be imported back by it. This is the circle evaluation had when its command line
  lived in m3i_modular/eval (eval.cli -> inference -> eval); it now lives in finetune/eval_common.py.
"""
import ast
import os
from typing import Dict, List, Set

from tiny_recipe import REPO  # noqa: E402

PKG = "m3i_modular"


def _modules() -> Dict[str, tuple]:
    mods = {}
    for folder, _, files in os.walk(os.path.join(REPO, PKG)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                is_pkg = name.endswith(".__init__")
                mods[name[:-9] if is_pkg else name] = (path, is_pkg)
    return mods


def _ancestors(m: str) -> Set[str]:
    parts = m.split(".")
    return {".".join(parts[:i]) for i in range(2, len(parts))}


def import_graph() -> Dict[str, Set[str]]:
    mods = _modules()
    edges: Dict[str, Set[str]] = {m: set() for m in mods}
    for m, (path, is_pkg) in mods.items():
        pkg = m if is_pkg else m.rsplit(".", 1)[0]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == PKG]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] == PKG:
                    targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            for t in targets:
                while t not in mods:
                    t = t.rsplit(".", 1)[0]
                for dep in {t} | _ancestors(t):
                    if dep != PKG and dep != m and dep not in _ancestors(m):
                        edges[m].add(dep)
    return edges


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _top(m: str) -> str:
    return ".".join(m.split(".")[:2])


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_no_top_level_part_of_the_library_imports_one_that_imports_it_back():
    parts: Dict[str, Set[str]] = {}
    for m, deps in import_graph().items():
        parts.setdefault(_top(m), set()).update(_top(d) for d in deps if _top(d) != _top(m))
    assert cycles(parts) == []


def test_the_checker_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    edges = import_graph()
    assert "m3i_modular.eval.features" in edges["m3i_modular.inference"]      # inference uses eval ...
    assert not any(_top(d) == "m3i_modular.inference" for m, deps in edges.items()  # ... never the reverse
                   if _top(m) == "m3i_modular.eval" for d in deps)
