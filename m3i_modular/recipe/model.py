"""Objective + PretrainModel: the online tower (embedding, encoder), batch transforms, and objectives, each
binding one selector, one target embedding, one decoder and one target. Names no method: what a component
needs, it declares (m3i_modular/interfaces.py), and the model passes exactly that."""
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import batch_transforms as _batch_transforms  # noqa: F401  (registration of their selectors too)
from ..embeddings import build_embedding
from ..errors import ConfigError
from ..interfaces import (AfterInitFrom, AfterOptimizerStep, BatchTransform, BindsModel, Borrowed, Decoder, Encoded,
                         Encoder, Selector, Target, TargetEmbedding, conforms, contract_problems,
                         encoder_output_tokens, need_keyword, needs_of, tower_width_problem)
from ..registry import (BATCH_TRANSFORMS, DECODERS, ENCODERS, SELECTORS, TARGET_EMBEDDINGS, TARGETS, build,
                       build_context, config_error, config_path, nearest)
from .sections import ModelConfig, ObjectiveConfig
from ..selectors.selection import gather_needs


class Objective(nn.Module):
    def __init__(self, *, name: str, input: str, target_view: str, target_embedding: nn.Module,
                 decoder: nn.Module, target: nn.Module, select: Callable[[Encoded, dict], Any],
                 weight: float = 1.0, loss_on: str = "all", shared_target: bool = False):
        super().__init__()
        if loss_on not in ("all", "masked", "visible"):
            raise ValueError(f"loss_on must be all, masked or visible, got {loss_on!r}")
        self.name, self.input, self.target_view, self.select = name, input, target_view, select
        self.weight, self.loss_on = weight, loss_on
        # declared once under "shared": referenced here, owned (and saved) there
        self._shared_target = Borrowed(f"objective '{name}' target embedding",
                                       target_embedding if shared_target else None)
        if not shared_target:
            self.target_embedding = target_embedding
        self.decoder, self.target = decoder, target

    @property
    def target_embedding(self) -> nn.Module:  # type: ignore[override]
        own = self._modules.get("target_embedding")
        return own if own is not None else self._shared_target.get()

    def forward(self, enc: Encoded, batch: dict, targets_cache: dict):
        sel = self.select(enc, batch)
        te = self.target_embedding
        key = (id(te), self.target_view)
        if key not in targets_cache:  # one EMA pass serves every objective that reads the same view
            targets_cache[key] = te(batch, view=self.target_view)
        tgt = targets_cache[key].take(sel.rows)
        needed = gather_needs(needs_of(self.decoder), batch, sel, target_view=self.target_view,
                              target_grid=tgt.grid, batch_size=enc.z.shape[0])
        pred = self.decoder(sel, **needed)
        loss_mask = None
        if self.loss_on != "all" and sel.visible is not None:
            loss_mask = ~sel.visible if self.loss_on == "masked" else sel.visible
        return self.target(pred, tgt, loss_mask)


class PretrainModel(nn.Module):
    def __init__(self, *, embedding: nn.Module, encoder: nn.Module, shared: Dict[str, nn.Module],
                 batch_transforms: List[nn.Module], objectives: Dict[str, Objective], mask_mode: str = "drop"):
        super().__init__()
        if mask_mode not in ("drop", "replace"):
            raise ValueError(f"mask_mode must be drop or replace, got {mask_mode!r}")
        self.embedding, self.encoder = embedding, encoder
        self.shared = nn.ModuleDict(shared)
        self.batch_transforms = nn.ModuleList(batch_transforms)
        self.objectives = nn.ModuleDict(objectives)
        self.mask_mode = mask_mode
        if mask_mode == "replace":  # SimMIM: masked patches enter the encoder as a learned token
            # it replaces embedding tokens, whose width may differ from the encoder's (a conv stem)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, embedding.dim))
            nn.init.normal_(self.mask_token, std=0.02)

    # -- the online tower -------------------------------------------------------------------------------
    def encode(self, batch: dict, name: str) -> Encoded:
        views = batch.get("views", {})
        if name in views:
            inputs = views[name]
        elif name in batch and torch.is_tensor(batch[name]):
            inputs = batch[name]
        else:
            raise ConfigError(f"objective input '{name}' is not in the batch"
                              f"{nearest(name, list(views) + [k for k, v in batch.items() if torch.is_tensor(v)])}")
        fields = {need_keyword(n): batch.get(need_keyword(n)) for n in needs_of(self.embedding)}  # "batch:*"
        tokens = self.embedding(inputs, **fields)
        prefix = tokens.prefix
        mask = batch.get("masks", {}).get(name)
        keep = None
        if mask is not None and self.mask_mode == "replace":
            x = tokens.x.clone()
            grid_x = x[:, prefix:]
            m = mask.unsqueeze(-1).to(x.dtype)
            fill = self.mask_token.to(x.dtype)
            if tokens.pos is not None:  # the embedding says which part of x is position: keep it
                fill = fill + tokens.pos[:, -grid_x.shape[1]:].to(x.dtype)
            x[:, prefix:] = grid_x * (1 - m) + fill * m
            tokens = tokens.with_x(x)
        elif mask is not None:
            k = batch.get("mask_keep", {}).get(name)  # counted by the collate on the host
            if k is None:
                k = int((~mask[0]).sum())  # sync: a mask made on the device
            keep = (~mask).float().argsort(dim=1, descending=True, stable=True)[:, :k].sort(dim=1).values
        enc_keep = keep
        if keep is not None and prefix:
            pre = torch.arange(prefix, device=keep.device).expand(keep.shape[0], -1)
            enc_keep = torch.cat([pre, keep + prefix], dim=1)
        attn_mask = batch.get("attn_masks", {}).get(name)  # written by a batch transform (mixing "within")
        if attn_mask is not None:
            if keep is not None:
                raise ConfigError(f"input '{name}' has an attention mask from a batch transform (mixing with "
                                  f"attention 'within') and is also masked by dropping tokens: use one of them "
                                  f"(or attention 'across', or mask_mode \"replace\")")
            if prefix:  # prefix tokens (CLS) attend to, and are seen by, every token
                attn_mask = F.pad(attn_mask, (prefix, 0, prefix, 0), value=True)
        z = self.encoder(tokens, keep=enc_keep, attn_mask=attn_mask)
        tokens = encoder_output_tokens(self.encoder, tokens, z)
        # which output tokens entered as the mask token: only known when the encoder keeps the token layout
        replaced = mask if (mask is not None and keep is None and z.shape[1] - prefix == mask.shape[1]) else None
        return Encoded(name=name, z=z, tokens=tokens, keep=keep, mask=mask if keep is not None else None,
                       prefix=prefix, replaced=replaced)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> last-layer tokens (B, N, D)."""
        return self.encoder(self.embedding(images))

    # -- training ---------------------------------------------------------------------------------------
    def forward(self, batch: dict) -> Dict[str, torch.Tensor]:
        for bt in self.batch_transforms:
            batch = bt(batch)
        encoded: Dict[str, Encoded] = {}
        targets_cache: dict = {}
        out: Dict[str, torch.Tensor] = {}
        total = None
        for name, obj in self.objectives.items():
            if obj.input not in encoded:
                encoded[obj.input] = self.encode(batch, obj.input)
            loss, metrics = obj(encoded[obj.input], batch, targets_cache)
            out[f"{name}_loss"] = loss
            for k, v in metrics.items():
                out[f"{name}_{k}"] = v
            total = obj.weight * loss if total is None else total + obj.weight * loss
        out["loss"] = total
        return out

    # -- lifecycle: the trainer calls these without knowing why; modules that implement a hook get it ------
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        for m in _implementing(self, AfterOptimizerStep):
            m.after_optimizer_step(step, total_steps)

    def after_init_from(self) -> None:
        for m in _implementing(self, AfterInitFrom):
            m.after_init_from()


def _implementing(model: nn.Module, hook: type) -> List[nn.Module]:
    """The model's modules (each once; borrowed ones are owned elsewhere in the model) that implement a
    lifecycle hook, listed before any is called: bind() adds modules (an EMA tower's copies)."""
    return [m for m in model.modules() if m is not model and isinstance(m, hook)]


def build_model(model_cfg: dict, shared_cfg: Optional[dict] = None, *, seed: int = 0) -> PretrainModel:
    """Assemble a PretrainModel from the "model" and "shared" sections of a recipe."""
    shared_cfg = shared_cfg or {}
    with config_path("model", absolute=True):
        if not isinstance(model_cfg, dict):
            raise config_error("'model' must be an object")
        ModelConfig.from_config(model_cfg)
    parts: Dict[str, nn.Module] = {}
    shared: Dict[str, nn.Module] = {}

    def resolve(ref: str):
        name, *attrs = ref[1:].split(".")
        if name in shared:
            obj = shared[name]
        elif name in parts:
            obj = parts[name]
        else:
            raise config_error(f"unknown reference '{ref}'{nearest(name, list(shared) + list(parts))}")
        for a in attrs:
            if not hasattr(obj, a):
                raise config_error(f"reference '{ref}': '{name}' has no part '{a}'")
            obj = getattr(obj, a)
        return obj

    with build_context(resolver=resolve, seed=seed):
        with config_path("model", absolute=True):
            parts["embedding"] = build_embedding(model_cfg["embedding"], key="embedding")
            parts["encoder"] = build(ENCODERS, model_cfg["encoder"], key="encoder", contract=conforms(Encoder))
            problem = tower_width_problem(parts["embedding"], parts["encoder"])
            if problem:
                raise config_error(problem, "encoder")
            bts = [build(BATCH_TRANSFORMS, c, key=f"batch_transforms[{i}]", contract=conforms(BatchTransform))
                   for i, c in enumerate(model_cfg.get("batch_transforms", []))]
        encoder_dim = parts["encoder"].dim
        used = _used_shared(model_cfg["objectives"], shared_cfg)
        with config_path("shared", absolute=True):
            for name, cfg in shared_cfg.items():
                if name in used:  # a component only weight-0 objectives use is not built either
                    shared[name] = build(TARGET_EMBEDDINGS, cfg, key=name, offer={"encoder_dim": encoder_dim},
                                         contract=conforms(TargetEmbedding))
        with config_path("model.objectives", absolute=True):
            objectives = {}
            if not model_cfg["objectives"]:
                raise config_error("a recipe needs at least one objective")
            for name, cfg in model_cfg["objectives"].items():
                with config_path(name):
                    ObjectiveConfig.from_config(cfg, what=f"objective '{name}'")
                    if cfg.get("weight", 1.0) == 0:
                        continue  # a weight-0 objective is not built at all
                    objectives[name] = _build_objective(name, cfg, parts["encoder"], resolve)
            if not objectives:
                raise config_error("every objective has weight 0: give one a non-zero weight")
        model = PretrainModel(embedding=parts["embedding"], encoder=parts["encoder"], shared=shared,
                              batch_transforms=bts, objectives=objectives,
                              mask_mode=model_cfg.get("mask_mode", "drop"))
    for m in _implementing(model, BindsModel):
        m.bind(model)
    for name, obj in model.objectives.items():  # a decoder's needs may come from what bind() found (tied)
        problems = contract_problems(obj.decoder, Decoder)
        if problems:
            with config_path(f"model.objectives.{name}.decoder", absolute=True):
                raise config_error(f"decoder {type(obj.decoder).__name__} does not satisfy the decoder contract "
                                   f"after bind(model): {'; '.join(problems)}")
    return model


def _refs(value: Any):
    """The "@name" heads of every reference string inside a config value."""
    if isinstance(value, str) and value.startswith("@"):
        yield value[1:].split(".")[0]
    elif isinstance(value, dict):
        for v in value.values():
            yield from _refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)


def _used_shared(objectives_cfg: Any, shared_cfg: dict) -> set:
    """Shared names reachable from the objectives that will be built (weight != 0)."""
    todo = [n for cfg in (objectives_cfg or {}).values() if isinstance(cfg, dict) and cfg.get("weight", 1.0) != 0
            for n in _refs(cfg)]
    used: set = set()
    while todo:
        name = todo.pop()
        if name in shared_cfg and name not in used:
            used.add(name)
            todo.extend(_refs(shared_cfg[name]))
    return used


def _build_objective(name: str, cfg: dict, encoder: nn.Module, resolve) -> Objective:
    te_cfg = cfg["target_embedding"]
    shared_target = isinstance(te_cfg, str)
    if shared_target:
        if not te_cfg.startswith("@"):
            raise config_error("target_embedding is an object or a \"@shared_name\" reference", "target_embedding")
        with config_path("target_embedding"):
            te = resolve(te_cfg)
            problems = contract_problems(te, TargetEmbedding)
            if problems:
                raise config_error(f"'{te_cfg}' is not a target embedding: {'; '.join(problems)}")
    else:
        te = build(TARGET_EMBEDDINGS, te_cfg, key="target_embedding", offer={"encoder_dim": encoder.dim},
                   contract=conforms(TargetEmbedding))
    how = cfg.get("select", "all")
    if how not in SELECTORS:
        raise config_error(f"unknown select '{how}'{nearest(how, SELECTORS.names())}", "select")
    problems = contract_problems(SELECTORS.get(how), Selector)
    if problems:
        raise config_error(f"selector '{how}' does not satisfy the selector contract: {'; '.join(problems)}", "select")
    decoder = build(DECODERS, cfg["decoder"], key="decoder", in_dim=encoder.dim, out_dim=te.dim,
                    contract=conforms(Decoder))
    target = build(TARGETS, cfg["target"], key="target", contract=conforms(Target))
    return Objective(name=name, input=cfg["input"], target_view=cfg["target_view"], target_embedding=te,
                     decoder=decoder, target=target, select=SELECTORS.get(how),
                     weight=float(cfg.get("weight", 1.0)), loss_on=cfg.get("loss_on", "all"),
                     shared_target=shared_target)
