"""From a resolved recipe to the objects of a run: model, data, optimizer, schedule (shared by pretrain.py,
--dry-run, the inference API and the tests)."""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from .recipe import validate
from .training.checkpoint import seed_everything
from .recipe.config import dump_config
from .errors import ConfigError
from .recipe.model import PretrainModel, build_model
from .training.optim import build_optimizer
from .registry import TOKENIZERS, build, config_path
from .training.schedules import Schedule
from .recipe.sections import OptimConfig, ScheduleConfig, TrainConfig


@dataclass
class Run:
    cfg: dict
    train: TrainConfig
    model: PretrainModel
    tokenizer: Any
    dataset: Any
    collate: Any
    monitors: List[Any] = field(default_factory=list)   # Trainer(monitors=...): k-NN accuracy etc.
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


def build_tokenizer(cfg: dict, *, base_dir: str = "") -> Any:
    tcfg = cfg.get("tokenizer")
    if tcfg is None:
        return None
    tcfg = dict(tcfg)
    for key in ("model", "vocab", "path"):  # file paths in a recipe are relative to the repo or the recipe
        if isinstance(tcfg.get(key), str) and not os.path.exists(tcfg[key]) and base_dir:
            alt = os.path.join(base_dir, tcfg[key])
            if os.path.exists(alt):
                tcfg[key] = alt
    with config_path("tokenizer", absolute=True):
        from .data import tokenizers  # noqa: F401  (registration)
        return build(TOKENIZERS, tcfg)


def build_run(cfg: dict, *, world: int = 1, with_data: bool = True, device: Optional[str] = None) -> Run:
    """Everything is validated here, before anything is written to disk; errors name the recipe file."""
    with config_path("", file=cfg.get("_file", ""), absolute=True):
        return _build_run(cfg, world=world, with_data=with_data, device=device)


def _build_run(cfg: dict, *, world: int, with_data: bool, device: Optional[str]) -> Run:
    tc = TrainConfig.from_config(cfg["train"], world=world)
    optim, schedule = OptimConfig.from_config(cfg.get("optim")), ScheduleConfig.from_config(cfg.get("schedule"))
    seed_everything(tc.seed)
    base_dir = os.path.dirname(cfg.get("_file", ""))
    tokenizer = build_tokenizer(cfg, base_dir=base_dir)
    if device == "meta":
        with torch.device("meta"):
            model = build_model(cfg["model"], cfg.get("shared"), seed=tc.seed)
    else:
        # validate.py: on the meta device first, so that sizes the machine cannot hold are refused, not allocated
        meta = validate.build_on_meta(cfg, tc.seed)
        if meta is not None:
            where = "cuda" if tc.device != "cpu" and torch.cuda.is_available() else "cpu"
            validate.check_memory(meta, optimizer=optim.type, device=device or where)
        model = build_model(cfg["model"], cfg.get("shared"), seed=tc.seed)
    dataset = collate = None
    if with_data:
        from .data.views.pipeline import PretrainDataset, build_views, collate
        views = build_views(cfg.get("views", {})) if cfg.get("views") else {}
        dataset = PretrainDataset(cfg["data"], views, tokenizer=tokenizer, seed=tc.seed)
        from .data.metadata import check_text_data
        check_text_data(model, dataset, tokenizer, cfg["model"])  # the shards' tokenizer and ids against the run's
        if device != "meta":
            validate.probe(cfg, model, dataset, collate)  # shape rules on real samples, before any step
    from .eval.monitor import build_monitors
    monitors = build_monitors(cfg, train=tc)  # validates the "eval" section
    if monitors and tc.parallel == "fsdp" and world > 1:
        raise ConfigError("eval monitors (k-NN) run on rank 0 alone and cannot read FSDP-sharded weights: set "
                          "eval.knn_every to 0, or train.parallel to \"ddp\"")
    return Run(cfg=cfg, train=tc, model=model, tokenizer=tokenizer, dataset=dataset, collate=collate,
               monitors=monitors, optim=optim, schedule=schedule)


def build_optim(run: Run):
    """The optimizer over run.model's parameters and the lr schedule (errors name the recipe file)."""
    with config_path("", file=run.cfg.get("_file", ""), absolute=True):
        opt = build_optimizer(run.model, run.optim, batch_size=run.train.batch_size)
    return opt, Schedule(run.schedule, run.train.total_steps)


def parameter_table(model: torch.nn.Module) -> Dict[str, int]:
    """Parameters per component (shared ones counted once, where they are declared)."""
    table: Dict[str, int] = {}
    for name, p in model.named_parameters():
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in ("objectives", "shared") else parts[0]
        table[key] = table.get(key, 0) + p.numel()
    table["total"] = sum(p.numel() for p in model.parameters())
    return table


def run_flops(run: Run, device: Optional[torch.device] = None, world: int = 1, n: int = 2, strict: bool = True,
              quiet: bool = False):
    """FLOPs per step of the run's global batch (flops.StepFlops: 3x the forward FLOPs on the autograd graph,
    1x those without gradient), counted on its first `n` samples, with the peak of `device` for MFU.
    strict=False (a training run): a model the counter cannot run gives a warning and None, not a failure."""
    from .training.flops import sample_batch, step_flops
    from .runtime.peaks import device_peak
    from .runtime.precision import resolve_precision
    here = next(run.model.parameters()).device  # counted where the model is; the peak is of `device`
    precision = resolve_precision(run.train.precision, (device or here).type)[0]
    try:
        return step_flops(run.model, sample_batch(run.dataset, run.collate, n, here),
                          batch_size=run.train.batch_size, peak=device_peak(device or here, precision),
                          world=world)
    except Exception as e:  # noqa: BLE001  (the FLOP count is a report, never the reason a run stops)
        if strict:
            raise
        if quiet:
            return None
        import sys
        print(f"warning: FLOPs per step not counted ({type(e).__name__}: {e}); metrics.jsonl has no MFU",
              file=sys.stderr)
        return None


def describe(run: Run) -> str:
    lines = ["# resolved config", dump_config(run.cfg), "# parameters per component"]
    for k, v in parameter_table(run.model).items():
        lines.append(f"{k:40s} {v:>14,d}")
    if run.dataset is not None:
        cuda = torch.cuda.is_available() and run.train.device != "cpu"
        lines.append(run_flops(run, torch.device("cuda" if cuda else "cpu")).describe())
    return "\n".join(lines)
