"""Tar shards in the WebDataset layout: one writer for every modality, and a member index for random access.

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
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Dict, List, Optional, Tuple

from ..errors import DataError
from .atomic import atomic_path, atomic_write_text

INDEX_VERSION = 1
INDEX_SUFFIX = ".idx.json"

Members = Dict[str, Tuple[int, int]]  # extension -> (data offset, size)


def split_name(name: str) -> Tuple[str, str]:
    """'dir/000123.seg.png' -> ('dir/000123', 'seg.png'), the WebDataset grouping rule."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{head}/{stem}" if head else stem
    return key, ext.lower() if dot else ""


class ShardWriter:
    """Write samples ({extension: bytes}) into `pattern % shard_number` tar files.

    A new shard starts after `max_count` samples or `max_bytes` bytes. Each shard is written under a
    temporary name and renamed when closed, with its index file beside it; `shards` lists what was written
    (file name, sample count, bytes, sha256) for a manifest.
    """

    def __init__(self, pattern: str, *, max_count: int = 10000, max_bytes: int = 1 << 30, start: int = 0):
        if "%" not in pattern:
            raise ValueError(f"shard pattern needs a %-field for the shard number, e.g. 'out/%06d.tar': {pattern}")
        self.pattern, self.max_count, self.max_bytes = pattern, max(1, max_count), max(1, max_bytes)
        self.number = start
        self.shards: List[Dict[str, object]] = []
        self._tar: Optional[tarfile.TarFile] = None
        self._ctx = None
        self._count = self._bytes = 0
        self._samples: List[list] = []

    def write(self, key: str, sample: Dict[str, bytes]) -> None:
        if not key or "." in key.rpartition("/")[2]:
            raise ValueError(f"sample key '{key}' must be non-empty and have no dot in its file name")
        if self._tar is not None and (self._count >= self.max_count or self._bytes >= self.max_bytes):
            self._close_shard()
        if self._tar is None:
            self._open_shard()
        members: Dict[str, List[int]] = {}
        for ext, data in sample.items():
            if isinstance(data, str):
                data = data.encode("utf-8")
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mode = len(data), 0o644  # mtime 0: same input, same bytes, same checksum
            info.uname = info.gname = "m3i"
            self._tar.addfile(info, io.BytesIO(data))
            # the member's data sits right before the writer's position, padded to 512 bytes
            end = self._tar.offset
            members[ext.lower()] = [end - _padded(len(data)), len(data)]
            self._bytes += len(data)
        self._samples.append([key, members])
        self._count += 1

    def _open_shard(self) -> None:
        self.path = self.pattern % self.number
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._tar = tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT)
        self._tmp = tmp
        self._count = self._bytes = 0
        self._samples = []

    def _close_shard(self) -> None:
        self._tar.close()
        size, digest = os.path.getsize(self._tmp), _sha256(self._tmp)
        self._ctx.__exit__(None, None, None)  # rename into place
        _write_index_file(self.path, size, self._samples)
        self.shards.append({"file": os.path.basename(self.path), "samples": self._count, "bytes": size,
                            "sha256": digest})
        self._tar = self._ctx = None
        self.number += 1

    def close(self) -> None:
        if self._tar is not None:
            self._close_shard()

    def abort(self) -> None:
        """Drop the shard being written (its temporary file is removed)."""
        if self._tar is not None:
            self._tar.close()
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._tar = self._ctx = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort() if exc_type is not None else self.close()


def _padded(n: int) -> int:
    return -(-n // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_index_file(shard: str, size: int, samples: List[list], *, truncated: bool = False) -> None:
    atomic_write_text(shard + INDEX_SUFFIX, json.dumps(
        {"version": INDEX_VERSION, "shard_bytes": size, "truncated": truncated, "samples": samples},
        separators=(",", ":")))


class ShardIndex:
    """The samples of one shard: keys and, per sample, {extension: (offset, size)}.

    `truncated` is True when the tar ended inside a header or a member: samples whose data lies past the end
    stay listed (reading them fails, and the failure is counted) and anything after is lost.
    """

    def __init__(self, path: str, keys: List[str], members: List[Members], truncated: bool):
        self.path, self.keys, self.members, self.truncated = path, keys, members, truncated

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
    return ShardIndex(path, keys, members, bool(data.get("truncated", False)))


def write_index(path: str) -> ShardIndex:
    """Scan a shard (e.g. one img2dataset wrote) and save its index beside it."""
    index = ShardIndex.scan(path)
    samples = [[k, {e: list(v) for e, v in m.items()}] for k, m in zip(index.keys, index.members)]
    _write_index_file(path, os.path.getsize(path), samples, truncated=index.truncated)
    return index


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
