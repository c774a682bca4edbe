"""Building blocks the components share: attention (torch SDPA), transformer blocks, MLP, drop-path and
position helpers. Registers nothing.

Imports only errors and runtime/; never a component family, recipe/ or training/."""
from .attention import Attention
from .block import TransformerBlock
from .drop_path import DropPath
from .mlp import Mlp
from .positions import grid_centres, sincos_1d, sincos_2d, view_relative_positions

__all__ = ["Attention", "TransformerBlock", "DropPath", "Mlp", "grid_centres", "sincos_1d", "sincos_2d",
           "view_relative_positions"]
