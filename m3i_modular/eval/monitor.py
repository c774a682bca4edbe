"""Training-time k-NN monitor, configured by the recipe's "eval" section:

    "eval": {"knn_every": 100, "knn_train": 1000, "knn_val": 500, "k": 20}

Every `knn_every` steps (and at the last step) the online tower's mean-pooled features of `knn_train`
training-split and `knn_val` held-out samples are scored with weighted k-NN; the accuracy lands in
metrics.jsonl as `knn_acc`. The images are rendered once and kept, so each call costs two forward passes.
"""
from typing import Any, Dict, List, Optional

from ..recipe.sections import EvalConfig, TrainConfig
from .features import build_split_source, extract_features, load_split
from .classes import check_monitor_sources
from .knn import knn_accuracy
from .transform import eval_transform


class KnnMonitor:
    """A Trainer monitor: `monitor(model, step=..., device=..., dtype=...) -> {"knn_acc": ...}` on evaluation
    steps (every knn_every steps and the last), {} otherwise. The trainer calls it on rank 0 at logging steps."""

    def __init__(self, cfg: dict, ec: EvalConfig, *, total_steps: int):
        self.ec, self.total_steps = ec, total_steps
        self.steps = eval_transform(cfg, view=ec.view)
        # build (and so validate) both splits now, before a run writes anything; render them lazily
        self.train_source = build_split_source(cfg, "train", num_samples=ec.knn_train, source=ec.source)
        self.val_source = build_split_source(cfg, "val", num_samples=ec.knn_val, source=ec.source)
        check_monitor_sources(self.train_source, self.val_source, k=ec.k, knn_train=ec.knn_train)
        self._data = None

    def due(self, step: int) -> bool:
        return step % self.ec.knn_every == 0 or step == self.total_steps

    def __call__(self, model, *, step: int, device, dtype: Optional[Any] = None) -> Dict[str, float]:
        """`model`: the online PretrainModel (unwrapped); `dtype`: the autocast dtype (None: fp32)."""
        if not self.due(step):
            return {}
        if self._data is None:
            self._data = (load_split(self.train_source, self.steps, limit=self.ec.knn_train),
                          load_split(self.val_source, self.steps, limit=self.ec.knn_val))
        (xtr, ytr), (xva, yva) = self._data
        kw = dict(batch_size=self.ec.batch_size, device=device, autocast_dtype=dtype)
        ftr = extract_features(model, xtr, **kw)
        fva = extract_features(model, xva, **kw)
        acc = knn_accuracy(ftr, ytr, fva, yva, k=self.ec.k, temperature=self.ec.temperature,
                           num_classes=int(max(ytr.max(), yva.max())) + 1)
        return {"knn_acc": acc}


def build_monitors(cfg: dict, *, train: TrainConfig) -> List[Any]:
    """The monitors a recipe's "eval" section asks for (none without one)."""
    ec = EvalConfig.from_config(cfg.get("eval"), log_every=train.log_every)
    return [KnnMonitor(cfg, ec, total_steps=train.total_steps)] if ec.knn_every else []
