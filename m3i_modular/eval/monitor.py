"""Training-time k-NN monitor, configured by the recipe's "eval" section:

    "eval": {"knn_every": 100, "knn_train": 1000, "knn_val": 500, "k": 20}

Every `knn_every` steps (and at the last step) the online tower's mean-pooled features of `knn_train`
training-split and `knn_val` held-out samples are scored with weighted k-NN; the accuracy lands in
metrics.jsonl as `knn_acc`. The images are rendered once and kept, so each call costs two forward passes.
"""
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional

from ..registry import check_kwargs, config_error, config_path
from .features import build_split_source, extract_features, load_split
from .knn import knn_accuracy
from .transform import eval_transform


@dataclass
class EvalConfig:
    knn_every: int = 0          # 0: no k-NN monitor
    knn_train: int = 1000
    knn_val: int = 500
    k: int = 20
    temperature: float = 0.07
    batch_size: int = 256
    source: int = 0             # which data source (its train / val splits)
    view: Optional[str] = None  # the view whose size and normalisation the eval transform copies

    @classmethod
    def from_config(cls, cfg: Any, *, log_every: int = 1) -> "EvalConfig":
        with config_path("eval", absolute=True):
            if not isinstance(cfg, dict):
                raise config_error(f"expected an object like {{\"knn_every\": 100, \"k\": 20}}, got {cfg!r}")
            check_kwargs(cls, cfg, what="eval")
            ec = cls(**cfg)
            for f in ("knn_every", "knn_train", "knn_val", "k", "batch_size"):
                if getattr(ec, f) < (0 if f == "knn_every" else 1):
                    raise config_error(f"{f} must be {'>= 0' if f == 'knn_every' else '>= 1'}, "
                                       f"got {getattr(ec, f)}", f)
            if ec.temperature <= 0:
                raise config_error(f"temperature must be > 0, got {ec.temperature}", "temperature")
            if ec.knn_every and ec.knn_every % log_every:
                # monitors run when the trainer logs; other steps would silently never be evaluated
                raise config_error(f"knn_every ({ec.knn_every}) must be a multiple of train.log_every "
                                   f"({log_every})", "knn_every")
        return ec

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
    """The monitors a recipe asks for (an empty list without an "eval" section)."""
    if cfg.get("eval") is None:
        return []
    ec = EvalConfig.from_config(cfg["eval"], log_every=log_every)
    return [KnnMonitor(cfg, ec)] if ec.knn_every else []
