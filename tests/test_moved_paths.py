"""Release 0.1's flat module paths still import for one release: the same module object as the new path,
after one DeprecationWarning that names the new path (m3i_modular/__init__.py)."""
import importlib
import subprocess
import sys

import pytest

import m3i_modular

OLD_TO_NEW = dict(m3i_modular.MOVED)


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_old_path_is_the_new_module_with_a_deprecation_line(old):
    new = importlib.import_module(f"m3i_modular.{OLD_TO_NEW[old]}")
    sys.modules.pop(f"m3i_modular.{old}", None)
    with pytest.warns(DeprecationWarning, match=rf"m3i_modular\.{old} moved to m3i_modular\.{OLD_TO_NEW[old]}"):
        shim = importlib.import_module(f"m3i_modular.{old}")
    assert shim is new


def test_names_import_from_old_paths_in_a_fresh_interpreter():
    """What a user's script of release 0.1 does, in a new process (nothing preloaded)."""
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n"
            "    from m3i_modular.trainer import Trainer\n"
            "except DeprecationWarning as w:\n"
            "    print('warned:', w)\n"
            "warnings.simplefilter('ignore')\n"
            "from m3i_modular.trainer import Trainer\n"
            "from m3i_modular.training.trainer import Trainer as T2\n"
            "from m3i_modular import checkpoint\n"
            "from m3i_modular.rules import value_problem\n"
            "from m3i_modular.runtime import plan_threads\n"
            "from m3i_modular.runtime.threads import plan_threads as p2\n"
            "print(Trainer is T2, checkpoint.__name__, value_problem('dim', 0), plan_threads is p2)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == ("warned: m3i_modular.trainer moved to m3i_modular.training.trainer; the old path is removed "
                        "in the next release")
    assert lines[1] == "True m3i_modular.training.checkpoint dim must be >= 1, got 0 True"


def test_an_unknown_old_name_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("m3i_modular.no_such_module")
