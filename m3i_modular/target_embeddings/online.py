"""`online` (SimCLR: the other view through the online tower itself, with gradient) and `stopgrad` (SimSiam:
the same without gradient). The tower is the model's own embedding and encoder, found in bind(model) and
held by reference, so nothing is copied or saved twice."""
from typing import Optional

import torch
from torch import nn

from ..interfaces import Selection, TargetOut
from ..registry import TARGET_EMBEDDINGS, config_error, resolve_refs


def resolve_part(model: nn.Module, path: str) -> nn.Module:
    """A dotted path into the assembled model ("encoder", "objectives.simclr.decoder")."""
    obj = model
    for name in path.split("."):
        if not hasattr(obj, name):
            raise config_error(f"model has no part '{path}' (stuck at '{name}')")
        obj = getattr(obj, name)
    if not isinstance(obj, nn.Module):
        raise config_error(f"'{path}' is not a module")
    return obj


def pool_tokens_all(z: torch.Tensor, how: str, prefix: int) -> torch.Tensor:
    if how == "cls":
        if not prefix:
            raise config_error("pool 'cls' needs an embedding with a cls_token")
        return z[:, 0]
    return z[:, prefix:].mean(1)


@TARGET_EMBEDDINGS.register("online")
class OnlineTower(nn.Module):
    """pool: "mean" / "cls" (one vector per image; also offered as batch candidates for InfoNCE) or "none".
    head: a dotted path to a module applied after pooling, e.g. "objectives.simclr.decoder" (SimCLR shares
    the projector); dim: its output width (0 = the encoder's)."""

    detach = False

    def __init__(self, *, pool: str = "mean", head: str = "", dim: int = 0):
        super().__init__()
        if pool not in ("none", "mean", "cls"):
            raise config_error(f"pool must be none, mean or cls, got '{pool}'", "pool")
        self.pool, self.head_path = pool, head
        if not dim:
            if head:
                raise config_error("set 'dim' to the head's output width", "dim")
            enc = resolve_refs("@encoder")
            dim = getattr(enc, "dim", 0) if not isinstance(enc, str) else 0
            if not dim:
                raise config_error("cannot read the encoder's width here: set 'dim'", "dim")
        self.dim = dim

    def bind(self, model: nn.Module) -> None:
        self.__dict__["_model"] = model
        self.__dict__["_head"] = resolve_part(model, self.head_path) if self.head_path else None

    def forward(self, batch: dict, *, view: str) -> TargetOut:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach):
            out = self._forward(batch, view)
        if self.detach:
            out.value = out.value.detach()
            out.candidates = None if out.candidates is None else out.candidates.detach()
        return out

    def _forward(self, batch: dict, view: str) -> TargetOut:
        model: Optional[nn.Module] = self.__dict__.get("_model")
        if model is None:
            raise RuntimeError("online target embedding used before bind(model)")
        images = batch["views"][view]
        tokens = model.embedding(images)
        z = model.encoder(tokens)
        prefix = getattr(model.embedding, "num_prefix", 0)
        b = z.shape[0]
        rows = torch.arange(b, device=z.device)
        valid = torch.ones(b, dtype=torch.bool, device=z.device)
        head = self.__dict__["_head"]
        if self.pool == "none":
            out = z[:, prefix:]
            if head is not None:
                out = head(Selection(z=out, rows=rows, grid=tokens.grid))
            return TargetOut(valid=valid, value=out, grid=tokens.grid)
        out = pool_tokens_all(z, self.pool, prefix)
        if head is not None:
            out = head(Selection(z=out.unsqueeze(1), rows=rows))
        return TargetOut(valid=valid, value=out, candidates=out, index=rows, candidates_per_row=True,
                         candidate_valid=valid)


@TARGET_EMBEDDINGS.register("stopgrad")
class StopGradTower(OnlineTower):
    """SimSiam: the online tower on the other view, without gradient."""

    detach = True
