"""Deterministic sample order over weighted sources, and a sampler of global positions.

A global position p (0, 1, 2, ... over the whole run) lies in epoch p // epoch_size. The order of an epoch is a
pure function of (seed, epoch): each slot draws its source with the sources' weights, and the k-th draw
from a source takes the k-th entry of that source's per-epoch permutation (a fresh permutation each time
the source wraps around). So a resumed run that skips its first n positions sees exactly the samples the
uninterrupted run would have, whatever the number of workers.
"""
from __future__ import annotations

import hashlib
from typing import Iterator, Optional, Sequence, Tuple

import torch
from torch.utils.data import Sampler


def derive_seed(*parts) -> int:
    """A 63-bit seed from any printable parts, stable across processes (unlike hash())."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def generator(*parts) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g


def epoch_order(weights: Sequence[float], lengths: Sequence[int], epoch_size: int, seed: int,
                epoch: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(source id, index within source) for every slot of one epoch, both long (epoch_size,)."""
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if len(w) == 1:
        source = torch.zeros(epoch_size, dtype=torch.long)
    else:
        source = torch.multinomial(w, epoch_size, replacement=True, generator=generator("mix", seed, epoch))
    index = torch.empty(epoch_size, dtype=torch.long)
    for s, n in enumerate(lengths):
        slots = (source == s).nonzero().flatten()
        if len(slots) == 0:
            continue
        cycles = -(-len(slots) // n)
        perm = torch.cat([torch.randperm(n, generator=generator("perm", seed, epoch, s, c))
                          for c in range(cycles)])
        index[slots] = perm[:len(slots)]
    return source, index


class PositionSampler(Sampler):
    """Global positions start + rank, start + rank + world_size, ... (forever, or `total` positions in all
    ranks together). Resume by passing start = samples consumed so far (all ranks)."""

    def __init__(self, *, start: int = 0, rank: int = 0, world_size: int = 1, total: Optional[int] = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.start, self.rank, self.world_size, self.total = start, rank, world_size, total

    def __iter__(self) -> Iterator[int]:
        p = self.start + self.rank
        end = None if self.total is None else self.start + self.total
        while end is None or p < end:
            yield p
            p += self.world_size

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("an endless PositionSampler has no length; pass total=")
        return max(0, -(-(self.total - self.rank) // self.world_size))
