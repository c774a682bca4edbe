"""Metric loggers (rank 0 only): jsonl (metrics.jsonl), and optional tensorboard and wandb.

`train.loggers` names them; the trainer builds each with the run directory and hands every one the same record
(a flat dict: step, losses, lr, throughput, monitors) at each logging step. A logger never changes the record."""
import json
import os
import secrets

from ..errors import ConfigError
from ..registry import LOGGERS


def _scalars(record: dict) -> dict:
    """The numbers of a record (what a plotting logger can draw), without "step"."""
    return {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}


@LOGGERS.register("jsonl")
class JsonlLogger:
    """One JSON line per logging step in <run>/metrics.jsonl (appended to on --resume)."""

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
    """TensorBoard scalars in <run>/tb (needs: pip install -e .[tensorboard])."""

    def __init__(self, *, output_dir: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("logger 'tensorboard' needs the tensorboard package: pip install tensorboard") from None
        self.w = SummaryWriter(os.path.join(output_dir, "tb"))

    def log(self, record: dict) -> None:
        step = record.get("step", 0)
        for k, v in _scalars(record).items():
            self.w.add_scalar(k, v, step)

    def close(self) -> None:
        self.w.close()


WANDB_ID_FILE = "wandb_run_id"


@LOGGERS.register("wandb")
class WandbLogger:
    """Weights & Biases: one wandb run per run directory, resumed by --resume (needs: pip install -e .[wandb]).

    The run id is kept in <run>/wandb_run_id, so a resumed run (or any later start in the same directory) logs to
    the same wandb run; wandb's files go to <run>/wandb. The resolved recipe (<run>/config.json) is the wandb
    config; "step" is the x-axis of every metric, so steps a resumed run repeats are plotted, not dropped. wandb's
    own environment variables apply: WANDB_MODE=offline (no account or network; `wandb sync <run>/wandb/...`
    uploads later), WANDB_PROJECT (default "m3i_modular"), WANDB_ENTITY, WANDB_NAME (default: the run
    directory's name), WANDB_RUN_GROUP, WANDB_TAGS."""

    def __init__(self, *, output_dir: str):
        try:
            import wandb
        except ImportError:
            raise ConfigError("logger 'wandb' needs the wandb package: pip install wandb "
                              "(or pip install -e .[wandb])") from None
        self.run_id = self._run_id(output_dir)
        config = None
        cfg_path = os.path.join(output_dir, "config.json")
        if os.path.isfile(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                config = json.load(f)
        name = os.environ.get("WANDB_NAME") or os.path.basename(os.path.abspath(output_dir))
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "m3i_modular", name=name,
                              id=self.run_id, resume="allow", dir=output_dir, config=config,
                              allow_val_change=True)
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    @staticmethod
    def _run_id(output_dir: str) -> str:
        """The directory's wandb run id: the stored one, else WANDB_RUN_ID or a new one, stored first."""
        path = os.path.join(output_dir, WANDB_ID_FILE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                run_id = f.read().strip()
            if run_id:
                return run_id
        run_id = os.environ.get("WANDB_RUN_ID") or secrets.token_hex(4)
        os.makedirs(output_dir, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(run_id + "\n")
        os.replace(tmp, path)
        return run_id

    def log(self, record: dict) -> None:
        self.run.log({"step": record.get("step", 0), **_scalars(record)})

    def close(self) -> None:
        self.run.finish()
