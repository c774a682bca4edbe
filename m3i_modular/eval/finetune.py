"""Full fine-tuning of an image tower, the MAE / BEiT protocol at our scale, as a RECIPE the pretraining trainer
runs (finetune/run_image_classifier.py): resume, checkpoints, metrics.jsonl and DDP come with it.

`finetune_recipe(source_cfg, ...)` derives that recipe from a pretraining recipe (a checkpoint's own config, or a
recipe file for the random-init baseline): the same embedding and encoder (drop-path set), one objective
`classify` (mean pool -> LayerNorm -> linear classes, `soft_category` + `soft_boltzmann` with label smoothing),
a `mixup_cutmix` batch transform, AdamW with layer-wise lr decay as `optim.param_groups` rules
(`{"match": "encoder.blocks.N.*", "lr_mult": decay ** (depth - N)}`, the embedding at decay ** (depth + 1),
the final norm and the head at 1), warmup + cosine, and a train view (random resized crop + flip + the
recipe's own normalisation). `topk_accuracy` scores the trained classifier on a held-out split.
"""
import copy
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import ConfigError
from ..interfaces import TargetOut, needs_of
from ..selectors.selection import gather_needs, select
from .sources import class_names

OBJECTIVE = "classify"
SIZED = ("random_resized_crop", "resize", "center_crop")
_BLOCK = re.compile(r"^(encoder\.(?:stages\.\d+\.)?blocks\.\d+)\.")


# -- data ----------------------------------------------------------------------------------------------------
def num_classes_of(source: Any, spec: Optional[str] = None) -> Optional[int]:
    """What a source says of its classes (`num_classes`, else its class names: sources.class_names), or None."""
    n = getattr(source, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    names = class_names(source, spec)
    return len(names) if names else None


# -- the recipe ----------------------------------------------------------------------------------------------
def input_view(cfg: dict) -> Tuple[int, Optional[dict]]:
    """(image size, the normalize step) of the recipe's image input view."""
    views = cfg.get("views") or {}
    name = None
    for obj in ((cfg.get("model") or {}).get("objectives") or {}).values():
        if isinstance(obj, dict) and obj.get("input") in views:
            name = obj["input"]
            break
    name = name or next(iter(views), None)
    size, norm = None, None
    for step in views.get(name, []) if name else []:
        if isinstance(step, dict) and step.get("type") in SIZED and "size" in step:
            size = step["size"]
        if isinstance(step, dict) and step.get("type") == "normalize":
            norm = {k: v for k, v in step.items() if k in ("type", "mean", "std")}
    if size is None:
        size = ((cfg.get("model") or {}).get("embedding") or {}).get("image_size")
    if size is None:
        raise ConfigError("cannot tell the input size: the recipe's view has no crop or resize and "
                          "model.embedding has no image_size")
    return size, norm


def tower_layout(cfg: dict) -> Tuple[int, List[str]]:
    """(encoder output dim, the encoder's block prefixes in order), from the recipe's model built on the
    meta device (no memory, no init cost)."""
    from ..recipe.model import build_model
    with torch.device("meta"):
        model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    blocks: List[str] = []
    for name, _ in model.named_parameters():
        m = _BLOCK.match(name)
        if m and m.group(1) not in blocks:
            blocks.append(m.group(1))
    dim = getattr(model.encoder, "dim", None)
    if not isinstance(dim, int):
        raise ConfigError("the encoder does not say its output dim (encoder.dim)")
    return dim, blocks


def layer_decay_rules(blocks: Sequence[str], decay: float) -> List[dict]:
    """BEiT's layer-wise lr decay as param_groups rules: with n blocks, the embedding gets decay^(n+1),
    block i decay^(n-i); everything else (final norm, head) keeps lr_mult 1."""
    if decay == 1.0:
        return []
    n = len(blocks)
    rules = [{"match": "embedding.*", "lr_mult": decay ** (n + 1)}]
    rules += [{"match": f"{b}.*", "lr_mult": decay ** (n - i)} for i, b in enumerate(blocks)]
    return rules


def finetune_recipe(src: dict, *, num_classes: int, train_source: Dict[str, Any], steps: int, batch_size: int,
                    lr: float = 4e-3, layer_decay: float = 0.75, drop_path: float = 0.1,
                    label_smoothing: float = 0.1, mixup: float = 0.8, cutmix: float = 1.0,
                    mix_prob: float = 1.0, warmup_steps: int = 20, weight_decay: float = 0.05,
                    crop_scale: float = 0.5, seed: int = 0, device: str = "auto", precision: Optional[str] = None,
                    num_workers: Optional[int] = None, save_every: int = 0, description: str = "") -> dict:
    """The fine-tuning recipe of a pretraining recipe `src` (see the module docstring)."""
    model_src = src.get("model") or {}
    if "embedding" not in model_src or "encoder" not in model_src:
        raise ConfigError("the source recipe has no model.embedding / model.encoder to fine-tune")
    dim, blocks = tower_layout(src)
    if layer_decay != 1.0 and not blocks:
        raise ConfigError("the encoder has no encoder.blocks.N (or encoder.stages.S.blocks.N) parameters: "
                          "layer-wise lr decay needs them; pass --layer-decay 1")
    encoder = copy.deepcopy(model_src["encoder"])
    encoder["drop_path"] = float(drop_path)
    size, norm = input_view(src)
    view = [{"type": "random_resized_crop", "size": size, "scale": [float(crop_scale), 1.0]},
            {"type": "flip", "p": 0.5}] + ([norm] if norm else [])
    transforms = []
    if mixup > 0 or cutmix > 0:
        transforms.append({"type": "mixup_cutmix", "mixup_alpha": float(mixup), "cutmix_alpha": float(cutmix),
                           "prob": float(mix_prob), "switch_prob": 0.5, "view": "view1", "label": "label"})
    src_train = src.get("train") or {}
    train = {"total_steps": int(steps), "batch_size": int(batch_size),
             "precision": precision or src_train.get("precision", "fp32"), "clip_grad": 0.0, "seed": int(seed),
             "log_every": max(1, int(steps) // 50), "save_every": int(save_every), "keep_last": 1,
             "num_workers": src_train.get("num_workers", 2) if num_workers is None else int(num_workers),
             "device": device, "loggers": ["jsonl"]}
    for key in ("progress", "find_unused_parameters"):
        if key in src_train:
            train[key] = src_train[key]
    recipe = {
        "description": description or "image classification fine-tuning (layer-wise lr decay, drop-path, "
                                      "label smoothing, mixup/cutmix) derived from a pretraining recipe",
        "model": {
            "embedding": copy.deepcopy(model_src["embedding"]),
            "encoder": encoder,
            "batch_transforms": transforms,
            "objectives": {OBJECTIVE: {
                "input": "view1", "target_view": "label", "weight": 1.0,
                "target_embedding": {"type": "soft_category", "num_classes": int(num_classes), "dim": dim},
                "decoder": {"type": "pool", "pool": "mean", "head": "none", "norm": True},
                "target": {"type": "soft_boltzmann", "label_smoothing": float(label_smoothing)}}},
        },
        "data": {"sources": [dict(train_source, weight=1.0)]},
        "views": {"view1": view},
        "optim": {"type": "adamw", "lr": float(lr), "lr_scaling": {"rule": "linear", "ref_batch": 256},
                  "betas": [0.9, 0.999], "weight_decay": float(weight_decay),
                  "param_groups": layer_decay_rules(blocks, layer_decay)},
        "schedule": {"type": "cosine", "warmup_steps": int(warmup_steps)},
        "train": train,
    }
    if src.get("imports"):
        recipe["imports"] = list(src["imports"])
    return recipe


# -- scoring -------------------------------------------------------------------------------------------------
@torch.no_grad()
def classifier_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, C) float32 logits (on the CPU) of a fine-tuned model's `classify` objective for a batch of images on
    the model's device; the model is expected in eval mode (eval.features.frozen)."""
    if OBJECTIVE not in model.objectives:
        raise ConfigError(f"the model has no '{OBJECTIVE}' objective: not a run of run_image_classifier.py")
    obj = model.objectives[OBJECTIVE]
    te = obj.target_embedding
    batch = {"views": {obj.input: images}}
    sel = select(model.encode(batch, obj.input), "all", batch)
    needed = gather_needs(needs_of(obj.decoder), batch, sel, target_view=obj.target_view, target_grid=None,
                          batch_size=images.shape[0])
    pred = obj.decoder(sel, **needed)
    tgt = TargetOut(valid=torch.ones(images.shape[0], dtype=torch.bool, device=images.device),
                    candidates=te.weight, bias=te.bias)
    return obj.target.logits(pred, tgt).float().cpu()


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """{"top1": ..., "top5": ...}; k is capped at the number of classes (top-5 of 3 classes is 1.0)."""
    labels = labels.long()
    res = {}
    for k in ks:
        kk = min(k, logits.shape[1])
        hit = (logits.topk(kk, dim=1).indices == labels[:, None]).any(1).float()
        res[f"top{k}"] = float(hit.mean()) if len(labels) else 0.0
    return res
