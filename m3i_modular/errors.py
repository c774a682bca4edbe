"""User-facing errors: one line saying what is wrong, where, and how to fix it."""
import functools
import sys
from typing import Callable, Tuple


class ConfigError(Exception):
    """A user mistake in a recipe, a command line or an input file (exit code 2 at the entry points)."""

    def __init__(self, message: str, *, path: str = "", file: str = ""):
        self.message, self.path, self.file = message, path, file
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ":".join(p for p in (self.file, self.path) if p)
        return f"{where}: {self.message}" if where else self.message


class DataError(Exception):
    """Unreadable or malformed input data (a shard, an image, an audio file)."""


def entry_point(*, errors: Tuple[type, ...] = ()) -> Callable:
    """Decorates a script's main(argv) -> int: a ConfigError, DataError (or one of `errors`) becomes one line
    "error: ..." on stderr and exit code 2 -- a user mistake never ends in a traceback."""
    def wrap(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def main(*args, **kwargs) -> int:
            try:
                return fn(*args, **kwargs)
            except (ConfigError, DataError) + tuple(errors) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        return main
    return wrap
