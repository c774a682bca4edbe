"""The classes of an evaluation's two sides matched by name, and evaluations that cannot mean anything refused.

A label is a class's position among its side's class names (sorted folder names, a manifest's `classes`), so
train {a, b} and val {b, c} would score "b" as "a" and "c" as "b". When both sides name their classes:
- the same names in another order: the held-out labels are renumbered by name (nothing is lost);
- a class on one side only: a one-line error, unless `allow_mismatch` (--allow-class-mismatch), which
  renumbers the held-out labels by name, leaves out the held-out samples of classes the training side lacks,
  and reports both lists (`classes_only_train`, `classes_only_val` in the results, and a line on stderr).

The training-time k-NN monitor (recipe "eval") reads a fixed pair of splits: different class names there, or a
k larger than its training samples, is a recipe error (`check_monitor_sources`).

`refuse_meaningless` stops a score that says nothing: fewer than two training classes (every prediction is
that class), or a k-NN k larger than the training set (every neighbourhood is the whole set).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch

from ..errors import ConfigError, DataError
from ..registry import config_error
from .sources import class_names
from .subsets import source_labels


class Relabeled:
    """A source whose labels are renumbered by `mapping` (old -> new); a label not in it becomes None
    (unlabelled: left out of scoring). Every other attribute is the wrapped source's."""

    def __init__(self, source: Any, mapping: Dict[int, int], classes: Sequence[str]):
        self.source, self.mapping, self.classes = source, dict(mapping), list(classes)

    def __len__(self) -> int:
        return len(self.source)

    def _map(self, label: Optional[int]) -> Optional[int]:
        return None if label is None or int(label) < 0 else self.mapping.get(int(label))

    def __getitem__(self, index: int):
        raw = self.source[index]
        if raw is None:
            return None
        return dict(raw, label=self._map(raw.get("label")))

    def labels(self) -> Optional[List[Optional[int]]]:
        labels = source_labels(self.source)
        return None if labels is None else [self._map(y) for y in labels]

    def __getattr__(self, name: str):  # where(), paths, ... of the wrapped source
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def match_classes(train: Any, val: Any, *, allow_mismatch: bool = False) -> Dict[str, Any]:
    """Match two Split-like sides (with .source, .indices, .data, .class_names()) by class name, renumbering
    val's labels in place (val.source, val.indices); returns what to report ({} when nothing changed)."""
    tn, vn = train.class_names(), val.class_names()
    if not tn or not vn or list(tn) == list(vn):
        return {}
    only_train = [c for c in tn if c not in vn]
    only_val = [c for c in vn if c not in tn]
    if (only_train or only_val) and not allow_mismatch:
        sides = []
        if only_val:
            sides.append(f"{_names(only_val)} only in the held-out data ({val.data})")
        if only_train:
            sides.append(f"{_names(only_train)} only in the training data ({train.data})")
        raise ConfigError(f"the class names of the two sides differ: {'; '.join(sides)}. Labels are class "
                          f"positions, so they would be scored against the wrong classes; give both sides the "
                          f"same classes, or pass --allow-class-mismatch to score the shared classes matched by "
                          f"name")
    index = {name: i for i, name in enumerate(tn)}
    mapping = {i: index[name] for i, name in enumerate(vn) if name in index}
    if not mapping:
        raise ConfigError(f"the two sides share no class name (training: {_names(tn)}; held-out: {_names(vn)})")
    val.source = Relabeled(val.source, mapping, tn)
    labels = source_labels(val.source)
    if labels is not None:  # leave out the samples no training class can score (else they read as unlabelled)
        val.indices = [i for i in val.indices if labels[i] is not None]
        if not val.indices:
            raise ConfigError(f"none of the held-out samples drawn is of a class the training data has "
                              f"(shared: {_names([n for n in vn if n in index])})")
    report: Dict[str, Any] = {"classes_matched_by_name": len(mapping)}
    if only_train or only_val:
        report.update(classes_only_train=" ".join(only_train), classes_only_val=" ".join(only_val))
    return report


def check_monitor_sources(train: Any, val: Any, *, k: int, knn_train: int) -> None:
    """The training-time k-NN monitor's splits (recipe "eval"): the same class names in the same order, and k
    no larger than the training samples it reads; else a ConfigError, before the run writes anything."""
    tn, vn = class_names(train), class_names(val)
    if tn and vn and list(tn) != list(vn):
        only_train = [c for c in tn if c not in vn]
        only_val = [c for c in vn if c not in tn]
        what = (f"{_names(only_train) or 'none'} only in train, {_names(only_val) or 'none'} only in val"
                if only_train or only_val else f"the same names in another order ({_names(tn)} vs {_names(vn)})")
        raise config_error(f"the train and val splits of the monitored source name different classes ({what}); "
                           f"labels are class positions, so k-NN would score them against the wrong classes",
                           "eval")
    n = min(knn_train, len(train))
    if k > n:
        raise config_error(f"k = {k} is larger than the {n} training samples the k-NN monitor reads: every "
                           f"neighbourhood would be the whole set; lower eval.k or raise eval.knn_train", "eval.k")


def refuse_meaningless(train_labels: torch.Tensor, *, k: Optional[Sequence[int]] = None,
                       names: Optional[Sequence[str]] = None, what: str = "the training data") -> None:
    """DataError when a score over these training labels cannot mean anything (see the module's docstring)."""
    classes = sorted({int(y) for y in train_labels.tolist() if int(y) >= 0})
    n = int((train_labels >= 0).sum())
    if len(classes) < 2:
        name = (f" ('{names[classes[0]]}')" if names and classes and classes[0] < len(names) else "")
        raise DataError(f"{what} holds {len(classes)} class{name} over {n} labelled samples: an accuracy "
                        f"needs at least 2 classes to mean anything")
    if k is not None and max(k) > n:
        raise DataError(f"k = {max(k)} is larger than the {n} labelled training samples: every neighbourhood "
                        f"would be the whole training set; use --k <= {n} or more --train-samples")
