"""Checks of a recipe that run before a run allocates its model or writes a file (run.build_run).

1. `build_on_meta`: the model is first built on the meta device (no memory): every constructor's rule and the
   registry's value rules fail there as one config-error line with the JSON path.
2. `check_memory`: its parameters, gradients and optimizer state must fit the machine (a lower bound:
   activations come on top), else one line naming the largest component.
3. `probe`: after the real build, one forward of two real samples, without gradients, with the RNG and the
   model's buffers restored: objective inputs and target views must exist in the batch, image views must
   have the size the embedding was built for, and any other shape rule fails here, named by the component
   whose forward raised it -- instead of at step 1, after the run directory was written.
"""
import contextlib
import os
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import config_error, config_path, nearest

PROBE_ERRORS = (RuntimeError, ValueError, IndexError, AssertionError)


def build_on_meta(cfg: dict, seed: int) -> Optional[nn.Module]:
    """The model built on the meta device; None when a component cannot be built there (no estimate then)."""
    from .model import build_model
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            return build_model(cfg["model"], cfg.get("shared"), seed=seed)
    except ConfigError:
        raise
    except Exception:  # e.g. a plugin reading tensor values at init: the real build will show any problem
        return None


def config_key(param: str) -> str:
    """A parameter's name in the model -> the recipe path of the component that owns it."""
    parts = param.split(".")
    if parts[0] == "objectives" and len(parts) > 2:
        return f"model.objectives.{parts[1]}.{parts[2]}"
    if parts[0] == "shared" and len(parts) > 1:
        return f"shared.{parts[1]}"
    return f"model.{parts[0]}" if parts[0] in ("embedding", "encoder") else "model"


def _gb(n: float) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"


def available_memory(device: str) -> Tuple[int, str]:
    """(bytes, what they are) that a run on `device` may hold."""
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return props.total_memory, f"the memory of {props.name}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "the memory available on this machine"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's memory"
    except (ValueError, OSError, AttributeError):
        return 1 << 62, "unknown memory"


def check_memory(model: nn.Module, *, optimizer: str = "adamw", device: str = "cpu") -> None:
    """Refuse a model whose fp32 weights, gradients and optimizer state alone exceed the machine's memory."""
    states = 1 if optimizer == "sgd" else 2  # AdamW's two moments, SGD's momentum
    per: Dict[str, int] = {}
    need = 0
    for name, p in model.named_parameters():
        size = p.numel() * 4 * (1 + (1 + states if p.requires_grad else 0))
        per[config_key(name)] = per.get(config_key(name), 0) + p.numel()
        need += size
    need += sum(b.numel() * b.element_size() for b in model.buffers())
    have, what = available_memory(device)
    if need > have:
        part, count = max(per.items(), key=lambda kv: kv[1])
        total = sum(per.values())
        with config_path(part, absolute=True):
            raise config_error(f"the model has {total:.3g} parameters, whose weights, gradients and optimizer state "
                               f"alone need {_gb(need)}, more than {what} ({_gb(have)}); the largest part is "
                               f"{part} ({count:.3g}): make it smaller")


# -- the probe --------------------------------------------------------------------------------------------

def component_paths(model: nn.Module) -> Dict[nn.Module, str]:
    """Each component of a PretrainModel -> its recipe path (shared modules under the name they are declared)."""
    paths: Dict[nn.Module, str] = {}

    def add(m: Optional[nn.Module], path: str) -> None:
        if isinstance(m, nn.Module) and m not in paths:
            paths[m] = path

    for name, m in getattr(model, "shared", {}).items():
        add(m, f"shared.{name}")
    add(getattr(model, "embedding", None), "model.embedding")
    add(getattr(model, "encoder", None), "model.encoder")
    for i, bt in enumerate(getattr(model, "batch_transforms", [])):
        add(bt, f"model.batch_transforms[{i}]")
    for name, obj in getattr(model, "objectives", {}).items():
        for part in ("decoder", "target", "target_embedding"):
            add(getattr(obj, part, None), f"model.objectives.{name}.{part}")
        add(obj, f"model.objectives.{name}")
    return paths


@contextlib.contextmanager
def _kept(model: nn.Module):
    """Restore the model's buffers (BatchNorm statistics) and training mode after the block."""
    saved = [b.detach().clone() for b in model.buffers()]
    mode = model.training
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)
        model.train(mode)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _check_names(cfg: dict, model: nn.Module, batch: dict) -> None:
    """Objective inputs and target views name something the batch has, and image inputs fit the embedding."""
    views = batch.get("views", {})
    have = sorted(set(views) | {k for k, v in batch.items() if torch.is_tensor(v)})
    need_size = getattr(getattr(model, "embedding", None), "input_size", None)
    for name, obj in getattr(model, "objectives", {}).items():
        for key in ("input", "target_view"):
            value = getattr(obj, key)
            if value not in have:
                with config_path(f"model.objectives.{name}", absolute=True):
                    raise config_error(f"{key} '{value}' is neither a view of the recipe nor a batch field "
                                       f"(views: {', '.join(views) or 'none'}){nearest(value, have)}", key)
        x = views.get(obj.input)
        if need_size is not None and torch.is_tensor(x) and x.dim() == 4 and tuple(x.shape[-2:]) != tuple(need_size):
            source = _source_view(cfg, obj.input)
            with config_path(f"views.{source}", absolute=True):
                raise config_error(f"view '{source}' makes {x.shape[-2]}x{x.shape[-1]} images, which objective "
                                   f"'{name}' feeds to an embedding built for {need_size[0]}x{need_size[1]} "
                                   f"(model.embedding): make the view's size and the embedding's image_size equal")


def _source_view(cfg: dict, name: str) -> str:
    """The recipe view an input comes from: itself, or the source of the batch transform that writes it."""
    for bt in (cfg.get("model") or {}).get("batch_transforms", []) or []:
        if isinstance(bt, dict) and bt.get("output") == name and isinstance(bt.get("source"), str):
            return bt["source"]
    return name


def probe(cfg: dict, model: nn.Module, dataset, collate) -> None:
    """One forward of two samples of the recipe's data (see the module's docstring)."""
    if dataset is None or len(dataset) == 0:
        return
    batch = collate([dataset[i] for i in range(min(2, len(dataset)))])
    paths = component_paths(model)
    inside: List[str] = []
    hooks = []
    def enter(mod, args, path):
        inside.append(path)

    def leave(mod, args, out):
        inside.pop()  # returns None: the output stays what the module returned

    for m, path in paths.items():
        hooks.append(m.register_forward_pre_hook(lambda mod, args, path=path: enter(mod, args, path)))
        hooks.append(m.register_forward_hook(leave))
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]), _kept(model):
            model.train()
            transformed = batch
            for bt in getattr(model, "batch_transforms", []):
                transformed = bt(transformed)
            _check_names(cfg, model, transformed)
            inside.clear()
            model(batch)
    except ConfigError as e:
        if e.path or e.file:
            raise
        raise ConfigError(e.message, path=inside[-1] if inside else "model", file=cfg.get("_file", "")) from None
    except PROBE_ERRORS as e:
        where = inside[-1] if inside else "model"
        raise ConfigError(f"fails on a batch of this recipe's data ({type(e).__name__}: {_first_line(e)})",
                          path=where, file=cfg.get("_file", "")) from None
    finally:
        for h in hooks:
            h.remove()
