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
            except (ConfigError, DataError, OutputError) + tuple(errors) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        return main
    return wrap


class OutputError(Exception):
    """The run cannot write its output (disk full, read-only, no permission): one line naming the path and the
    cause (exit code 2 at the entry points)."""


def output_error(path: str, exc: OSError) -> OutputError:
    """An OSError from writing `path` as one line with what to do."""
    import errno
    hint = {errno.ENOSPC: "the disk is full: free space or choose another --output-dir",
            errno.EDQUOT: "the disk quota is used up: free space or choose another --output-dir",
            errno.EROFS: "the file system is read-only: choose another --output-dir",
            errno.EACCES: "permission denied: choose another --output-dir",
            errno.EPERM: "permission denied: choose another --output-dir",
            errno.ENOTDIR: "a file stands where a directory is needed: choose another --output-dir",
            errno.EFBIG: "the file is larger than this process may write (ulimit -f)"}.get(exc.errno, "")
    cause = exc.strerror or str(exc)
    return OutputError(f"cannot write '{path}': {cause}" + (f" ({hint})" if hint else ""))


class RunStopped(Exception):
    """The run stopped itself and cannot go on as configured (train.max_bad_steps non-finite steps in a row);
    its last good checkpoint is kept. One line, exit code 3."""


class Interrupted(BaseException):
    """A second Ctrl-C while the run was already stopping: exit at once, without a checkpoint."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def library_message(e: BaseException) -> str:
    """A third-party exception as '<Type>: <first line>', without the in-memory file objects PIL and
    libsndfile name ('<_io.BytesIO object at 0x7f...>'), which say nothing to a user."""
    import re
    text = (str(e).strip().splitlines() or [""])[0]
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", text).rstrip(" :")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
