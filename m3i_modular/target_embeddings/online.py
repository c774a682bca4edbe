"""`online` (SimCLR: the other view through the online tower itself, with gradient) and `stopgrad` (SimSiam:
the same without gradient). The tower is the model's own embedding and encoder, found in bind(model) and
held by reference, so nothing is copied or saved twice."""
import torch
from torch import nn

from ..interfaces import Borrowed, Selection, TargetOut, resolve_part
from ..registry import TARGET_EMBEDDINGS, config_error


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

    def __init__(self, *, pool: str = "mean", head: str = "", dim: int = 0, encoder_dim: int = 0):
        super().__init__()
        if pool not in ("none", "mean", "cls"):
            raise config_error(f"pool must be none, mean or cls, got '{pool}'", "pool")
        self.pool, self.head_path = pool, head
        if not dim:
            if head:
                raise config_error("set 'dim' to the head's output width", "dim")
            if not encoder_dim:  # built outside a model: nobody passed the encoder's width
                raise config_error("cannot read the encoder's width here: set 'dim'", "dim")
            dim = encoder_dim
        self.dim = dim
        # the online tower itself: references, so nothing is copied or saved twice
        self._embedding, self._encoder = Borrowed("online embedding"), Borrowed("online encoder")
        self._head = Borrowed(f"online head '{head}'")

    def bind(self, model: nn.Module) -> None:
        self._embedding.set(model.embedding)
        self._encoder.set(model.encoder)
        if self.head_path:
            self._head.set(resolve_part(model, self.head_path))

    def forward(self, batch: dict, *, view: str) -> TargetOut:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach):
            out = self._forward(batch, view)
        if self.detach:
            out.value = out.value.detach()
            out.candidates = None if out.candidates is None else out.candidates.detach()
        return out

    def _forward(self, batch: dict, view: str) -> TargetOut:
        images = batch["views"][view]
        tokens = self._embedding.get()(images)
        z = self._encoder.get()(tokens)
        prefix = tokens.prefix
        b = z.shape[0]
        rows = torch.arange(b, device=z.device)
        valid = torch.ones(b, dtype=torch.bool, device=z.device)
        head = self._head.get() if self.head_path else None
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
