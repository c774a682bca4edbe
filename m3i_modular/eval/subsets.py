"""Which samples an evaluation reads: never the first N of a source (shards written class by class would
probe one class), but a seeded, class-stratified draw when the source can tell its labels cheaply, else a
seeded uniform draw.

A source tells its labels cheaply by offering `labels() -> list of int or None` (one per sample, without
decoding images): `image_folder` knows them from its folder names, `webdataset_shards` reads the small
`.cls` members. Sources generated on the fly (`synthetic_shapes`) are built with exactly the number of
samples asked for, each an independent draw, so they are read whole.
"""
from typing import List, Optional, Sequence, Tuple

import torch


def source_labels(source) -> Optional[List[Optional[int]]]:
    """The source's labels without reading its images, or None when it cannot tell them cheaply."""
    fn = getattr(source, "labels", None)
    if not callable(fn):
        return None
    labels = list(fn())
    if len(labels) != len(source):
        raise ValueError(f"{type(source).__name__}.labels() gave {len(labels)} labels for {len(source)} samples")
    return labels


def _permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _largest_remainder(caps: Sequence[int], n: int) -> List[int]:
    """n units split in proportion to caps, none past its cap (n <= sum(caps))."""
    total = sum(caps)
    if n <= 0 or total == 0:
        return [0] * len(caps)
    share = [c * n / total for c in caps]
    take = [int(s) for s in share]
    order = sorted(range(len(caps)), key=lambda i: (-(share[i] - take[i]), -caps[i], i))
    while sum(take) < n:
        for i in order:
            if sum(take) < n and take[i] < caps[i]:
                take[i] += 1
    return take


def allocate(counts: Sequence[int], n: int) -> List[int]:
    """Split n draws over classes in proportion to their counts (largest remainder), with one of every class
    first when n allows, never more than a class holds."""
    n = max(0, min(n, sum(counts)))
    present = [1 if c > 0 else 0 for c in counts]
    if n < sum(present):
        return _largest_remainder(counts, n)
    rest = _largest_remainder([c - p for c, p in zip(counts, present)], n - sum(present))
    return [p + r for p, r in zip(present, rest)]


def stratified_indices(labels: Sequence[Optional[int]], n: int, seed: int = 0) -> List[int]:
    """n labelled indices drawn per class in proportion to the class sizes (every class represented when
    n >= the number of classes), seeded, returned sorted. Unlabelled samples (None or < 0) are never drawn."""
    by_class: dict = {}
    for i, y in enumerate(labels):
        if y is not None and int(y) >= 0:
            by_class.setdefault(int(y), []).append(i)
    classes = sorted(by_class)
    take = allocate([len(by_class[c]) for c in classes], n)
    g = torch.Generator().manual_seed(seed)
    out: List[int] = []
    for c, k in zip(classes, take):
        idx = by_class[c]
        perm = torch.randperm(len(idx), generator=g)[:k]
        out += [idx[int(j)] for j in perm]
    return sorted(out)


def per_class_indices(labels: Sequence[int], per_class: int, seed: int = 0) -> List[int]:
    """Up to `per_class` seeded indices of every class (all of a class that has fewer), sorted: the
    low-label probe's training set."""
    by_class: dict = {}
    for i, y in enumerate(labels):
        if y is not None and int(y) >= 0:
            by_class.setdefault(int(y), []).append(i)
    g = torch.Generator().manual_seed(seed)
    out: List[int] = []
    for c in sorted(by_class):
        idx = by_class[c]
        out += [idx[int(j)] for j in torch.randperm(len(idx), generator=g)[:per_class]]
    return sorted(out)


# Past this many samples the labels are not scanned (a read per sample on shards): a seeded uniform draw is as
# good a sample of a large source, class-sorted or not.
MAX_LABEL_SCAN = 1_000_000


def choose_subset(source, n: int, seed: int = 0) -> Tuple[List[int], str]:
    """(indices, how) of n samples of `source`: "all" when it holds no more than n, "stratified" when it
    tells its labels, "random" otherwise. The same (source, n, seed) always gives the same indices."""
    size = len(source)
    if size <= n:
        return list(range(size)), "all"
    labels = source_labels(source) if size <= MAX_LABEL_SCAN else None
    if labels is not None and any(y is not None and int(y) >= 0 for y in labels):
        return stratified_indices(labels, n, seed), "stratified"
    return sorted(int(i) for i in _permutation(size, seed)[:n]), "random"
