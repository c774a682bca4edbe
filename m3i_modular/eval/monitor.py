"""Training-time k-NN monitor, configured by the recipe's "eval" section:

    "eval": {"knn_every": 100, "knn_train": 1000, "knn_val": 500, "k": 20}

Every `knn_every` steps (and at the last step) the online tower's mean-pooled features of `knn_train`
training-split and `knn_val` held-out samples are scored with weighted k-NN; the accuracy lands in
metrics.jsonl as `knn_acc`. The images are rendered once and kept, so each call costs two forward passes.
"""
from typing import Any, Dict, List

from ..sections import EvalConfig
from .features import build_split_source, extract_features, load_split
from .knn import knn_accuracy
from .transform import eval_transform


class KnnMonitor:
    """A Trainer monitor: `monitor(trainer) -> {"knn_acc": ...}` on evaluation steps, {} otherwise."""

    def __init__(self, cfg: dict, ec: EvalConfig):
        self.ec = ec
        self.steps = eval_transform(cfg, view=ec.view)
        # build (and so validate) both splits now, before a run writes anything; render them lazily
        self.train_source = build_split_source(cfg, "train", num_samples=ec.knn_train, source=ec.source)
        self.val_source = build_split_source(cfg, "val", num_samples=ec.knn_val, source=ec.source)
        self._data = None

    def due(self, step: int, total_steps: int) -> bool:
        return step % self.ec.knn_every == 0 or step == total_steps

    def __call__(self, trainer) -> Dict[str, float]:
        if not self.due(trainer.step, trainer.tc.total_steps) or not trainer.env.is_main:
            return {}
        if self._data is None:
            self._data = (load_split(self.train_source, self.steps, limit=self.ec.knn_train),
                          load_split(self.val_source, self.steps, limit=self.ec.knn_val))
        (xtr, ytr), (xva, yva) = self._data
        kw = dict(batch_size=self.ec.batch_size, device=trainer.env.device,
                  autocast_dtype=getattr(trainer, "autocast_dtype", None))
        ftr = extract_features(trainer.raw, xtr, **kw)
        fva = extract_features(trainer.raw, xva, **kw)
        acc = knn_accuracy(ftr, ytr, fva, yva, k=self.ec.k, temperature=self.ec.temperature,
                           num_classes=int(max(ytr.max(), yva.max())) + 1)
        return {"knn_acc": acc}


def build_monitors(cfg: dict, *, log_every: int = 1) -> List[Any]:
    """The monitors a recipe's "eval" section asks for (none without one)."""
    ec = EvalConfig.from_config(cfg.get("eval"), log_every=log_every)
    return [KnnMonitor(cfg, ec)] if ec.knn_every else []
