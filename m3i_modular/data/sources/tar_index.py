"""Reading tar shards in the WebDataset layout: the member index and position reads.

A sample is the group of consecutive members sharing a key: `000000042.jpg`, `000000042.txt`,
`000000042.cls`, `000000042.json` (key = the path up to the first dot of the file name, extension = the rest,
lower-cased), which is what img2dataset writes, so its shards are read as they are.

Reading by position instead of streaming is what makes resume exact: an index lists every member's data
offset and size, a sample is read with `os.pread` (no shared file offset, so a descriptor inherited by a
forked DataLoader worker is safe), and the per-epoch permutation of positions is the shuffle. We read tar
headers with the standard library's `tarfile` rather than the `webdataset` package because the latter
streams and has no position to resume from; `tarfile` gives member offsets directly.

Index files (`<shard>.idx.json`, written by `preprocess.py images` or `write_index`) are used when their
recorded shard size matches; otherwise the index is built in memory from the headers (one seek per member).

A truncated shard (a download cut short, a stale index over a shard that shrank) is refused where it is read
(`truncation_error`), unless its index was written knowingly (`preprocess.py images --index SHARD
--allow-truncated`: `accepted`) or the source is given allow_truncated; then the samples past the cut are
skipped and counted like any unreadable sample.
"""
from __future__ import annotations

import json
import os
import tarfile
from typing import Dict, List, Optional, Tuple

from ...errors import DataError

INDEX_VERSION = 1
INDEX_SUFFIX = ".idx.json"

Members = Dict[str, Tuple[int, int]]  # extension -> (data offset, size)


def split_name(name: str) -> Tuple[str, str]:
    """'dir/000123.seg.png' -> ('dir/000123', 'seg.png'), the WebDataset grouping rule."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext.lower() if dot else ""


class ShardIndex:
    """The samples of one shard: keys and, per sample, {extension: (offset, size)}.

    `truncated` is True when the tar ended inside a header or a member: samples whose data lies past the end
    stay listed (reading them fails, and the failure is counted) and anything after is lost.
    """

    def __init__(self, path: str, keys: List[str], members: List[Members], truncated: bool,
                 accepted: bool = False):
        self.path, self.keys, self.members, self.truncated = path, keys, members, truncated
        self.accepted = accepted  # truncated, and indexed with --allow-truncated: use what is left

    def readable(self, size: int) -> int:
        """Samples whose members all lie within the first `size` bytes."""
        return sum(all(o + n <= size for o, n in m.values()) for m in self.members)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def load(cls, path: str) -> "ShardIndex":
        """From `<path>.idx.json` when it matches the shard's size, else by scanning the tar headers."""
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise DataError(f"{path}: cannot read shard ({e.strerror})") from None
        cached = _read_index_file(path, size)
        if cached is not None:
            return cached
        return cls.scan(path, size)

    @classmethod
    def scan(cls, path: str, size: Optional[int] = None) -> "ShardIndex":
        size = os.path.getsize(path) if size is None else size
        keys: List[str] = []
        members: List[Members] = []
        truncated = False
        try:
            with tarfile.open(path, "r:") as tar:
                while True:
                    try:
                        info = tar.next()
                    except (tarfile.ReadError, EOFError, OSError):
                        truncated = True  # a header cut off, or garbage where a header should be
                        break
                    if info is None:
                        break
                    if not info.isfile():
                        continue
                    key, ext = split_name(info.name)
                    if not ext or key.rpartition("/")[2].startswith("."):
                        continue  # hidden files and extensionless members are not sample fields
                    if info.offset_data + info.size > size:
                        truncated = True
                    if not keys or keys[-1] != key:
                        keys.append(key)
                        members.append({})
                    members[-1][ext] = (info.offset_data, info.size)
        except tarfile.ReadError as e:
            if size == 0 or not keys:
                raise DataError(f"{path}: not a readable tar shard ({e}); re-download or re-create it") from None
            truncated = True
        return cls(path, keys, members, truncated)


def _read_index_file(path: str, size: int) -> Optional[ShardIndex]:
    try:
        with open(path + INDEX_SUFFIX, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION or data.get("shard_bytes") != size:
        return None  # stale or foreign: rebuild from the headers
    keys = [k for k, _ in data["samples"]]
    members = [{e: (int(o), int(n)) for e, (o, n) in m.items()} for _, m in data["samples"]]
    truncated = bool(data.get("truncated", False))
    return ShardIndex(path, keys, members, truncated, accepted=truncated)


def truncation_error(index: ShardIndex) -> DataError:
    """One line for a truncated shard: how much is left, a stale index if any, and the two ways on."""
    size = os.path.getsize(index.path)
    stale = ""
    try:
        with open(index.path + INDEX_SUFFIX, encoding="utf-8") as f:
            recorded = json.load(f).get("shard_bytes")
        if recorded != size:
            stale = f"; its index {os.path.basename(index.path)}{INDEX_SUFFIX} was written for {recorded} bytes"
    except (OSError, ValueError, AttributeError):
        pass
    return DataError(f"{index.path} is truncated: {size} bytes, {index.readable(size)} of its samples readable"
                     f"{stale}; re-download or re-create it, or keep what is left with: python preprocess.py "
                     f"images --index {index.path} --allow-truncated")


class ShardFiles:
    """Read member bytes with pread; descriptors are opened lazily, per process, and kept (a bounded few)."""

    def __init__(self, max_open: int = 64):
        self.max_open = max_open
        self._fds: Dict[str, int] = {}
        self._pid = os.getpid()

    def read(self, path: str, offset: int, size: int) -> bytes:
        if os.getpid() != self._pid:  # a forked worker: its own descriptors, never the parent's
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(path)
        if fd is None:
            if len(self._fds) >= self.max_open:
                os.close(self._fds.pop(next(iter(self._fds))))
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise DataError(f"{path}: cannot open shard ({e.strerror})") from None
            self._fds[path] = fd
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise DataError(f"{path}: member at byte {offset} is cut off ({len(data)} of {size} bytes); "
                            f"the shard is truncated")
        return data

    def __getstate__(self):  # DataLoader workers under spawn get a fresh, empty table
        return {"max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(state["max_open"])
