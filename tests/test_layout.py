"""The package's layout: which modules sit at the top, which folder may import which, no import circles,
every module imports on its own, no file over 400 lines, thin entry points in scripts/ and finetune/.

The import graph is read statically with `ast`: every `import` / `from ... import` in a module of m3i_modular, at
any nesting level (inside functions and `if TYPE_CHECKING:` too), relative imports resolved. `from p import x`
is an edge to the module p.x when x is a submodule, otherwise to p; an import of a package is an edge to its
__init__. Parent packages that Python initialises on the way are not edges: every module would otherwise sit
in one circle with m3i_modular/__init__.py, which imports the subpackages by design.
"""
import ast
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "m3i_modular"
MAX_LINES = 400
LINE_LIMITED = ("m3i_modular", "finetune", "scripts")
ENTRY_POINT_DIRS, ENTRY_POINT_LINES = ("finetune", "scripts"), 120

# The contract every component uses, and the entry points' code: nothing else sits at the package's top.
TOP_LEVEL = {"__init__", "interfaces", "registry", "errors", "cli", "run", "inference"}
COMPONENTS = ("embeddings", "encoders", "target_embeddings", "decoders", "targets", "batch_transforms", "selectors",
              "layers", "ops")
ENTRY = ("cli", "run", "inference")
# (folders, what they must not import, why): the layering of docs/ARCHITECTURE.md, "Where each thing lives"
FORBIDDEN = [
    (("recipe",), ("training", "eval", "convert", "preprocess", "study", "bench", "eval_cli") + ENTRY,
     "a recipe is read, checked and built before any loop, evaluation or entry point exists"),
    (COMPONENTS, ("recipe", "training", "data", "eval", "convert", "preprocess", "study", "bench", "eval_cli") + ENTRY,
     "a component imports only the contract (interfaces, registry, errors), layers/, ops/, runtime/ and other "
     "components, so a new method is one file"),
    (("training",), ("eval", "convert", "preprocess", "study", "bench", "eval_cli") + ENTRY,
     "the loop knows no evaluation, converter or entry point: they are handed to it"),
    (("data",), ("training", "eval", "convert", "preprocess", "study", "bench", "eval_cli") + ENTRY,
     "what runs in the loader is built from the recipe alone"),
    (("eval", "convert", "preprocess"), ("study", "bench", "eval_cli") + ENTRY,
     "study/, bench/, eval_cli/ and the entry points sit on top"),
]


def _py_files(top):
    for root, dirs, files in os.walk(os.path.join(REPO, top)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for f in sorted(files):
            if f.endswith(".py"):
                yield os.path.join(root, f)


def package_modules():
    """{dotted module name: (file path, is a package)} for every module of the package."""
    mods = {}
    for path in _py_files(PACKAGE):
        parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


def _inside(name):
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _known(name, mods):
    """The module an import of `name` runs last: name itself, or its longest prefix that is a module."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph():
    """({module: {imported module: line}}, {outside module names the package imports})."""
    mods = package_modules()
    graph, outside = {m: {} for m in mods}, set()
    for mod, (path, is_pkg) in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        here = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _inside(alias.name):
                        targets.append(_known(alias.name, mods))
                    else:
                        outside.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module
                if not _inside(base):
                    outside.add(base)
                    outside.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in mods else _known(base, mods))
            for t in targets:
                if t and t != mod:
                    graph[mod].setdefault(t, node.lineno)
    return graph, outside


def strongly_connected(graph):
    """Tarjan's algorithm, iterative: the strongly connected components of `graph`."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    comps.append(sorted(comp))
    return comps


def _cycle(graph, comp):
    """One shortest circle through the component's first module, as 'a:line -> b:line -> a'."""
    start, members = comp[0], set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    path.reverse()
                    hops = [f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:] + [start])]
                    return " -> ".join(hops + [str(start)])
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return " <-> ".join(map(str, comp))


def _circles(graph):
    return [f"{len(c)} modules {c}; one circle: {_cycle(graph, c)}"
            for c in strongly_connected(graph) if len(c) > 1]


def test_no_import_circles():
    graph, _ = import_graph()
    circles = _circles(graph)
    assert not circles, "import circles between modules:\n" + "\n".join(circles)


def _unit(module):
    """A module's top-level part of the package: m3i_modular.eval.cli -> m3i_modular.eval."""
    return ".".join(module.split(".")[:2])


def test_no_import_circles_between_subpackages():
    """The same at the grain of the package's top-level parts (subpackages and top-level modules), e.g.
    eval.cli -> inference -> eval.features is a circle between eval and inference though no module imports
    itself back. The line numbers name one import that makes each edge."""
    graph, _ = import_graph()
    units, via = {}, {}
    for a, edges in graph.items():
        units.setdefault(_unit(a), {})
        for b, line in edges.items():
            if _unit(a) != _unit(b) and _unit(b) not in units[_unit(a)]:
                units[_unit(a)][_unit(b)] = line
                via[_unit(a), _unit(b)] = f"{a} -> {b}"
                units.setdefault(_unit(b), {})
    circles = [f"{c}: " + "; ".join(f"{via[a, b]} (line {units[a][b]})" for a in c for b in c if b in units[a])
               for c in strongly_connected(units) if len(c) > 1]
    assert not circles, "import circles between the package's parts:\n" + "\n".join(circles)


_CHILDREN = r"""
import importlib, json, os, signal, sys, traceback
spec = json.load(sys.stdin)
for name in spec["preload"]:           # third-party and standard modules, imported once for every child
    try:
        importlib.import_module(name)
    except BaseException:
        pass
assert not [m for m in sys.modules if m.split(".")[0] == spec["package"]], "the package was preloaded"
results = {}
for name in spec["modules"]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                       # the child: a fresh interpreter as far as the package is concerned
        os.close(r)
        signal.alarm(120)
        rc = 0
        try:
            importlib.import_module(name)
        except BaseException as e:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<")]
            where = f" ({os.path.relpath(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
            msg = f"{type(e).__name__}: {e}{where}"
            os.write(w, msg.encode())
            rc = 1
        os.close(w)
        os._exit(rc)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    _, status = os.waitpid(pid, 0)
    results[name] = [os.waitstatus_to_exitcode(status), msg]
with open(spec["out"], "w") as f:
    json.dump(results, f)
"""


def test_every_module_imports_alone_in_a_fresh_interpreter(tmp_path):
    """`python -c "import X"` for every module X, cheaply: one interpreter imports the libraries the package uses
    (not the package), then forks one child per module that imports only that module."""
    assert hasattr(os, "fork"), "needs os.fork (POSIX)"
    graph, outside = import_graph()
    out = tmp_path / "results.json"
    spec = {"package": PACKAGE, "modules": sorted(graph), "preload": sorted(outside), "out": str(out)}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", _CHILDREN], input=json.dumps(spec), capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert sorted(results) == sorted(graph)
    failed = [f"{name}: exit {rc}: {msg or '(no exception: killed?)'}"
              for name, (rc, msg) in sorted(results.items()) if rc != 0]
    assert not failed, "modules that fail to import on their own:\n" + "\n".join(failed)


def test_no_file_over_400_lines():
    long_files = []
    for top in LINE_LIMITED:
        for path in _py_files(top):
            with open(path, encoding="utf-8") as f:
                n = sum(1 for _ in f)
            if n > MAX_LINES:
                long_files.append(f"{os.path.relpath(path, REPO)}: {n} lines")
    assert not long_files, f"files over {MAX_LINES} lines:\n" + "\n".join(long_files)


def _top(module):
    """m3i_modular.training.trainer -> training; m3i_modular.cli -> cli; m3i_modular -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_only_the_contract_and_the_entry_points_sit_at_the_top():
    top = sorted(os.path.basename(p)[:-3] for p in os.listdir(os.path.join(REPO, PACKAGE))
                 if p.endswith(".py"))
    extra = sorted(set(top) - TOP_LEVEL)
    assert not extra, (f"modules at m3i_modular's top besides {sorted(TOP_LEVEL)}: {extra}; move each into the "
                       "subpackage that names its part (recipe/, training/, runtime/, ...)")


def test_subpackages_import_only_downwards():
    graph, _ = import_graph()
    problems = []
    for mod, edges in sorted(graph.items()):
        for folders, forbidden, why in FORBIDDEN:
            if _top(mod) not in folders:
                continue
            for target, line in sorted(edges.items()):
                if _top(target) in forbidden:
                    problems.append(f"{mod} imports {target} (line {line}): {why}")
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_runtime_imports_nothing_of_ours_but_errors():
    graph, _ = import_graph()
    problems = [f"{mod} imports {target} (line {line})" for mod, edges in sorted(graph.items())
                if _top(mod) == "runtime" for target, line in sorted(edges.items())
                if _top(target) not in ("runtime", "errors")]
    assert not problems, "runtime/ (the process and the device) is the bottom layer:\n" + "\n".join(problems)


def test_study_bench_and_eval_cli_are_imported_by_nothing_in_the_package():
    graph, _ = import_graph()
    problems = [f"{mod} imports {target} (line {line})" for mod, edges in sorted(graph.items())
                for target, line in sorted(edges.items())
                if _top(target) in ("study", "bench", "eval_cli") and _top(mod) != _top(target)]
    assert not problems, "study/, bench/ and eval_cli/ sit on top of the library:\n" + "\n".join(problems)


def test_every_subpackage_says_what_belongs_there():
    missing = []
    for name in sorted(os.listdir(os.path.join(REPO, PACKAGE))):
        init = os.path.join(REPO, PACKAGE, name, "__init__.py")
        if os.path.isfile(init):
            with open(init, encoding="utf-8") as f:
                doc = ast.get_docstring(ast.parse(f.read()))
            if not doc or len(doc.split()) < 5:
                missing.append(name)
    assert not missing, f"subpackages whose __init__.py has no docstring saying what belongs there: {missing}"


def _code_lines(path):
    """Lines that are neither blank, comments nor the module docstring: what an entry point does."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    tree = ast.parse(src)
    doc_lines = set()
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None),
                                                                      ast.Constant):
        doc_lines = set(range(tree.body[0].lineno, tree.body[0].end_lineno + 1))
    return sum(1 for i, line in enumerate(src.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in doc_lines)


def test_entry_points_are_thin():
    fat = []
    for top in ENTRY_POINT_DIRS:
        for path in _py_files(top):
            n = _code_lines(path)
            if n > ENTRY_POINT_LINES:
                fat.append(f"{os.path.relpath(path, REPO)}: {n} lines of code")
    assert not fat, (f"entry points over {ENTRY_POINT_LINES} lines of code (argument handling and a call; the logic "
                     "belongs in the package: study/, bench/, eval_cli/, convert/):\n" + "\n".join(fat))
