"""`projector_predictor` (BYOL, MoCo v3): pool -> projector MLP -> predictor MLP, with the projector a named
sub-module (`<objective>.decoder.projector`) so a momentum tower can copy it as the target's head.
`tied`: another objective's decoder, reused with its parameters (a loss symmetrised over two views reads
view1 -> view2 and view2 -> view1 through one projector and one predictor)."""
from typing import Any, Tuple

import torch
from torch import nn

from ..interfaces import Borrowed, Selection, needs_of, resolve_part
from ..registry import DECODERS, config_error
from .pool import PoolDecoder, make_head


@DECODERS.register("projector_predictor")
class ProjectorPredictor(nn.Module):
    """Projector: pool + `projector_layers`-layer MLP (in_dim -> out_dim, hidden `projector_hidden`);
    predictor: `predictor_layers`-layer MLP (out_dim -> out_dim). `*_last_norm` ends an MLP with an
    affine-free BatchNorm (MoCo v3: on the projector, not on the predictor)."""


    def __init__(self, *, in_dim: int, out_dim: int, pool: str = "mean", projector_hidden: int = 0,
                 projector_layers: int = 2, projector_last_norm: bool = False, predictor_hidden: int = 0,
                 predictor_layers: int = 2, predictor_last_norm: bool = False, mlp_norm: str = "batch"):
        super().__init__()
        if projector_layers < 1 or predictor_layers < 1:
            raise config_error("projector_layers and predictor_layers must be >= 1", "projector_layers")
        self.projector = PoolDecoder(in_dim=in_dim, out_dim=out_dim, pool=pool, head="mlp",
                                     hidden=projector_hidden, layers=projector_layers, mlp_norm=mlp_norm,
                                     last_norm=projector_last_norm)
        self.predictor = make_head("mlp", out_dim, out_dim, predictor_hidden, predictor_layers, mlp_norm,
                                   predictor_last_norm)

    def forward(self, sel: Selection) -> torch.Tensor:
        return self.predictor(self.projector(sel))


@DECODERS.register("tied")
class TiedDecoder(nn.Module):
    """`to`: a dotted path to a decoder in the assembled model, e.g. "objectives.byol.decoder". Held by
    reference (found in bind), so its parameters are neither copied nor saved twice."""

    def __init__(self, *, in_dim: int, out_dim: int, to: str):
        super().__init__()
        if not to.startswith("objectives.") or not to.endswith(".decoder"):
            raise config_error(f"'to' names another objective's decoder (objectives.NAME.decoder), got '{to}'",
                               "to")
        self.to, self.in_dim, self.out_dim = to, in_dim, out_dim
        self._tied = Borrowed(f"tied decoder '{to}'")  # its parameters stay with the objective that owns them

    @property
    def needs(self) -> Tuple[str, ...]:
        """The tied decoder's needs (none until bind(model) found it)."""
        return needs_of(self._tied.get()) if self._tied.bound else ()

    def bind(self, model: nn.Module) -> None:
        tied = resolve_part(model, self.to)
        if isinstance(tied, TiedDecoder):
            raise config_error(f"'{self.to}' is itself a tied decoder: point at the decoder that owns the weights")
        self._tied.set(tied)

    def forward(self, sel: Selection, **needed: Any) -> torch.Tensor:
        return self._tied.get()(sel, **needed)
