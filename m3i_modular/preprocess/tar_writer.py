"""Writing tar shards in the WebDataset layout: one writer for every modality, and index files.

The layout and the index format are described in m3i_modular/data/sources/tar_index.py, which reads them.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from typing import Dict, List, Optional

from ..runtime.atomic import atomic_path, atomic_write_text, file_sha256
from ..data.sources.tar_index import INDEX_SUFFIX, INDEX_VERSION, ShardIndex, truncation_error


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
        size, digest = os.path.getsize(self._tmp), file_sha256(self._tmp)
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


def _write_index_file(shard: str, size: int, samples: List[list], *, truncated: bool = False) -> None:
    atomic_write_text(shard + INDEX_SUFFIX, json.dumps(
        {"version": INDEX_VERSION, "shard_bytes": size, "truncated": truncated, "samples": samples},
        separators=(",", ":")))


def write_index(path: str, *, allow_truncated: bool = False) -> ShardIndex:
    """Scan a shard (e.g. one img2dataset wrote) and save its index beside it. A truncated shard is a DataError
    (nothing written) unless `allow_truncated`: then its index records that, and readers accept it."""
    index = ShardIndex.scan(path)
    if index.truncated and not allow_truncated:
        raise truncation_error(index)
    samples = [[k, {e: list(v) for e, v in m.items()}] for k, m in zip(index.keys, index.members)]
    _write_index_file(path, os.path.getsize(path), samples, truncated=index.truncated)
    return index
