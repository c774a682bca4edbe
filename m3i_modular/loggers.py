"""Metric loggers (rank 0 only): jsonl (metrics.jsonl) and optional tensorboard."""
import json
import os

from .errors import ConfigError
from .registry import LOGGERS


@LOGGERS.register("jsonl")
class JsonlLogger:
    def __init__(self, *, output_dir: str, filename: str = "metrics.jsonl"):
        self.path = os.path.join(output_dir, filename)
        self.f = open(self.path, "a", encoding="utf-8")

    def log(self, record: dict) -> None:
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


@LOGGERS.register("tensorboard")
class TensorboardLogger:
    def __init__(self, *, output_dir: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("logger 'tensorboard' needs the tensorboard package: pip install tensorboard") from None
        self.w = SummaryWriter(os.path.join(output_dir, "tb"))

    def log(self, record: dict) -> None:
        step = record.get("step", 0)
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                self.w.add_scalar(k, v, step)

    def close(self) -> None:
        self.w.close()
