"""errors.entry_point: a script's user mistakes end as one line and exit code 2, other failures propagate."""
import pytest

from m3i_modular.errors import ConfigError, DataError, entry_point


class BuildFailed(Exception):
    pass


@entry_point(errors=(BuildFailed,))
def _main(exc=None) -> int:
    if exc is not None:
        raise exc
    return 0


@pytest.mark.parametrize("exc", [ConfigError("bad key", path="model.x", file="r.json"), DataError("no image"),
                                 BuildFailed("nvcc failed")])
def test_user_errors_are_one_line_exit_2(exc, capsys):
    assert _main(exc) == 2
    err = capsys.readouterr().err
    assert err == f"error: {exc}\n" and err.count("\n") == 1


def test_success_and_programming_errors_pass_through():
    assert _main() == 0
    with pytest.raises(ZeroDivisionError):
        _main(ZeroDivisionError("a bug, not a user mistake"))
