"""The rows of an image-text list (`preprocess.py images --list`): .tsv / .csv through the csv module (a field
in double quotes may hold the delimiter, quotes doubled, or a newline), .jsonl one object per line.

Every row is checked where it is read, and names its file and line: text that is not UTF-8, a row with more
or fewer fields than the header, a line that is not a JSON object. `on_bad_row="error"` (the default) makes
the first such row a DataError; "skip" leaves it out and records it in `bad` (printed and written to the
manifest by the caller). A named column the header lacks is always an error, naming the columns found.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import ConfigError, DataError

ON_BAD_ROW = ("error", "skip")


class ListReader:
    """`rows()` yields (line number, {column: value}); `bad` collects {"line", "error"} of skipped rows."""

    def __init__(self, path: str, *, required: Optional[Dict[str, str]] = None, on_bad_row: str = "error",
                 optional_flags: Tuple[str, ...] = ()):
        """required: {column: the flag that names it}, for the columns every row must have; optional_flags:
        the flags that may also be set to '' (no such column)."""
        if on_bad_row not in ON_BAD_ROW:
            raise ConfigError(f"--on-bad-row must be one of {', '.join(ON_BAD_ROW)}, got '{on_bad_row}'")
        self.path, self.skip = path, on_bad_row == "skip"
        self.required = {c: flag for c, flag in (required or {}).items() if c}
        self.optional_flags = optional_flags
        self.ext = os.path.splitext(path)[1].lower()
        if self.ext not in (".tsv", ".csv", ".jsonl"):
            raise ConfigError(f"--list '{path}': unknown format '{self.ext}' (use .tsv, .csv or .jsonl)")
        self.bad: List[Dict[str, object]] = []
        self._line = 0      # physical lines read so far
        self._start = None  # the first line of the record being read

    def bad_row(self, line: int, why: str) -> None:
        """A row that cannot be used: an error, or (skip) counted and left out."""
        if not self.skip:
            raise DataError(f"{self.path}:{line}: {why}; fix the row, or pass --on-bad-row skip to leave such "
                            f"rows out (counted)")
        self.bad.append({"line": line, "error": why})

    def _lines(self, f) -> Iterator[str]:
        """The file's lines decoded one at a time, so that a bad byte names its line."""
        for raw in f:
            self._line += 1
            try:
                text = raw.decode("utf-8-sig" if self._line == 1 else "utf-8")  # a byte-order mark is no column
            except UnicodeDecodeError as e:
                self.bad_row(self._line, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
                continue  # skipped: the record goes on from the next line
            if self._start is None:
                self._start = self._line
            yield text

    def rows(self) -> Iterator[Tuple[int, Dict[str, Optional[str]]]]:
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise ConfigError(f"--list '{self.path}': cannot open ({e.strerror})") from None
        with f:
            yield from (self._jsonl(f) if self.ext == ".jsonl" else self._delimited(f))

    def _jsonl(self, f) -> Iterator[Tuple[int, dict]]:
        for text in self._lines(f):
            line, self._start = self._line, None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as e:
                self.bad_row(line, f"not a JSON object ({e})")
                continue
            if not isinstance(row, dict):
                self.bad_row(line, "expected a JSON object per line")
                continue
            missing = [c for c in self.required if c not in row]
            if missing:
                self.bad_row(line, f"no {', '.join(repr(c) for c in missing)} key (keys: {', '.join(row)})")
                continue
            yield line, row

    def _delimited(self, f) -> Iterator[Tuple[int, Dict[str, Optional[str]]]]:
        delimiter = "\t" if self.ext == ".tsv" else ","
        reader = csv.reader(self._lines(f), delimiter=delimiter)
        header = self._next(reader)
        while header is not None and not any(h.strip() for h in header[1]):
            header = self._next(reader)  # blank lines before the header
        if header is None:
            raise DataError(f"{self.path}: the list is empty (expected a header row naming the columns)")
        names = [h.strip() for h in header[1]]
        missing = [c for c in self.required if c not in names]
        if missing:
            found = ", ".join(repr(n) for n in names)
            flags = [self.required[c] for c in missing]
            none = [f"{flag} ''" for flag in flags if flag in self.optional_flags]
            raise ConfigError(f"--list '{self.path}': no {' or '.join(repr(c) for c in missing)} column in the "
                              f"header (columns found: {found}); set {' / '.join(flags)} to one of them"
                              + (f", or {' '.join(none)} if the list has none" if none else ""))
        while True:
            got = self._next(reader)
            if got is None:
                return
            line, fields = got
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if len(fields) != len(names):
                quote = "a tab" if delimiter == "\t" else "a comma"
                self.bad_row(line, f"{len(fields)} field(s) where the header names {len(names)} ({quote} inside "
                                   f"a value needs the value in double quotes)")
                continue
            yield line, dict(zip(names, fields))

    def _next(self, reader) -> Optional[Tuple[int, List[str]]]:
        """(first line of the record, its fields), None at the end; a malformed record is a bad row."""
        while True:
            self._start = None
            try:
                fields = next(reader)
                return self._start or self._line, fields
            except StopIteration:
                return None
            except csv.Error as e:  # a NUL byte, a field past the csv module's size limit, ...
                self.bad_row(self._start or self._line, f"unreadable row ({e})")
