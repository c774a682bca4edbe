"""User-facing errors: one line saying what is wrong, where, and how to fix it."""


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
