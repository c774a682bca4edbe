"""InternImage (Wang et al., CVPR 2023): four stages of DCNv3 blocks on a channels-last map.

Tokens from the `intern_image_stem` embedding (stride 4) -> stages (each doubles the width and halves the
grid before the next) -> an optional neck to stride 16 (InternImage-H style: the last stage upsampled by a
1x1 conv + pixel shuffle, plus a 1x1 conv of stage 3) -> an optional 1x1 conv head (T/S/B classification)
-> tokens (B, h' * w', dim). `output_grid(grid)` tells the model which grid these tokens lie on.
"""
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..interfaces import Tokens
from ..layers.drop_path import DropPath
from ..ops.dcnv3 import DCNv3
from ..registry import ENCODERS, config_error

# InternImage paper Table 1 / upstream classification configs (internimage_{t,s,b}_1k_224.yaml).
SIZES = {
    "t": dict(channels=64, depths=[4, 4, 18, 4], groups=[4, 8, 16, 32], layer_scale=None, post_norm=False),
    "s": dict(channels=80, depths=[4, 4, 21, 4], groups=[5, 10, 20, 40], layer_scale=1e-5, post_norm=True),
    "b": dict(channels=112, depths=[4, 4, 21, 4], groups=[7, 14, 28, 56], layer_scale=1e-5, post_norm=True),
}


class InternImageBlock(nn.Module):
    """x + DCNv3 branch, then x + MLP branch; pre-norm, or post-norm (norm on the branch output, S/B)."""

    def __init__(self, *, channels: int, group: int, mlp_ratio: float, drop_path: float,
                 layer_scale: Optional[float], post_norm: bool, offset_scale: float, dw_kernel_size: int,
                 center_feature_scale: bool):
        super().__init__()
        self.post_norm = post_norm
        self.norm1 = nn.LayerNorm(channels, eps=1e-6)
        self.dcn = DCNv3(channels=channels, group=group, offset_scale=offset_scale, dw_kernel_size=dw_kernel_size,
                         center_feature_scale=center_feature_scale)
        self.norm2 = nn.LayerNorm(channels, eps=1e-6)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(channels, hidden))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Linear(hidden, channels))
        self.drop_path = DropPath(p=drop_path)
        if layer_scale is not None:
            self.gamma1 = nn.Parameter(torch.full((channels,), float(layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((channels,), float(layer_scale)))
        else:
            self.gamma1 = self.gamma2 = None

    def _branch(self, x: torch.Tensor, fn: nn.Module, norm: nn.Module, gamma) -> torch.Tensor:
        y = norm(fn(x)) if self.post_norm else fn(norm(x))
        return y if gamma is None else gamma * y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self._branch(x, self.dcn, self.norm1, self.gamma1))
        return x + self.drop_path(self._branch(x, self.mlp, self.norm2, self.gamma2))


class Downsample(nn.Module):
    """3x3 stride-2 conv (no bias) doubling the width, then LayerNorm; channels-last in and out."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.norm = nn.LayerNorm(2 * channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class Stage(nn.Module):
    def __init__(self, *, channels: int, depth: int, group: int, drop_paths: List[float], downsample: bool,
                 post_norm: bool, **block_kw):
        super().__init__()
        self.blocks = nn.ModuleList(InternImageBlock(channels=channels, group=group, drop_path=p,
                                                     post_norm=post_norm, **block_kw) for p in drop_paths)
        # Post-norm blocks end normalised already; pre-norm stages close with a LayerNorm (upstream keeps it
        # with center_feature_scale too).
        keep_norm = not post_norm or block_kw["center_feature_scale"]
        self.norm = nn.LayerNorm(channels, eps=1e-6) if keep_norm else None
        self.downsample = Downsample(channels=channels) if downsample else None


@ENCODERS.register("intern_image")
class InternImageEncoder(nn.Module):
    def __init__(self, *, size: str = "", channels: int = 0, depths: Optional[List[int]] = None,
                 groups: Optional[List[int]] = None, layer_scale: Optional[float] = None,
                 post_norm: Optional[bool] = None, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 offset_scale: float = 1.0, dw_kernel_size: int = 3, center_feature_scale: bool = False,
                 out_stride: int = 32, neck_dim: int = 0, head_scale: float = 0.0, checkpointing: bool = False):
        super().__init__()
        channels, depths, groups, layer_scale, post_norm = _resolve_size(size, channels, depths, groups,
                                                                         layer_scale, post_norm)
        if out_stride not in (16, 32):
            raise config_error(f"out_stride must be 32 (last stage) or 16 (neck over stages 3-4), "
                               f"got {out_stride}", "out_stride")
        widths = [channels * 2 ** i for i in range(len(depths))]
        self.input_dim = channels  # the stem's width it takes (checked against the embedding at build time)
        for i, (w, g) in enumerate(zip(widths, groups)):
            if w % g:
                raise config_error(f"stage {i} width {w} is not divisible by its group count {g}", "groups")
        self.channels, self.depths, self.out_stride, self.checkpointing = channels, depths, out_stride, checkpointing
        total = sum(depths)
        rates = [drop_path * i / max(total - 1, 1) for i in range(total)]  # linear stochastic-depth rule
        block_kw = dict(mlp_ratio=mlp_ratio, layer_scale=layer_scale, offset_scale=offset_scale,
                        dw_kernel_size=dw_kernel_size, center_feature_scale=center_feature_scale)
        self.stages = nn.ModuleList()
        for i, d in enumerate(depths):
            start = sum(depths[:i])
            self.stages.append(Stage(channels=widths[i], depth=d, group=groups[i],
                                     drop_paths=rates[start:start + d], downsample=i < len(depths) - 1,
                                     post_norm=post_norm, **block_kw))
        dim = widths[-1]
        self.neck = None
        if out_stride == 16:
            neck_dim = neck_dim or dim
            self.neck = nn.ModuleDict({
                "up": nn.Sequential(nn.Conv2d(widths[-1], neck_dim * 4, kernel_size=1), nn.PixelShuffle(2)),
                "lateral": nn.Conv2d(widths[-2], neck_dim, kernel_size=1)})
            dim = neck_dim
        elif neck_dim:
            raise config_error("neck_dim is only used with out_stride 16", "neck_dim")
        self.head = None
        if head_scale > 0:  # T/S/B classification head: 1x1 conv (no bias) + BatchNorm + GELU, per token
            width = int(dim * head_scale)
            self.head = nn.Sequential()
            self.head.add_module("conv", nn.Conv2d(dim, width, kernel_size=1, bias=False))
            self.head.add_module("bn", nn.BatchNorm2d(width))
            self.head.add_module("act", nn.GELU())
            dim = width
        self.dim = dim
        self.apply(_init_weights)
        for m in self.modules():
            if isinstance(m, DCNv3):
                m.reset_parameters()

    def output_grid(self, grid: Tuple[int, int]) -> Tuple[int, int]:
        """The grid of the output tokens for a stem grid (each downsample: ceil(n / 2))."""
        h, w = grid
        downs = len(self.depths) - 1 - (1 if self.out_stride == 16 else 0)
        for _ in range(downs):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def _run_stage(self, stage: Stage, x: torch.Tensor):
        for blk in stage.blocks:
            if self.checkpointing and self.training:
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        if stage.norm is not None:
            x = stage.norm(x)
        return x, (stage.downsample(x) if stage.downsample is not None else x)

    def forward(self, tokens: Tokens, keep: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None, return_layers: bool = False):
        """-> z (B, h' * w', dim); with return_layers (z, [each stage's map as tokens, ..., z]): the last
        entry is z itself, since a conv net has no 'last block before the final norm' apart from it."""
        if keep is not None:
            raise config_error("the intern_image encoder is convolutional and cannot drop masked tokens: "
                               "set model.mask_mode to \"replace\" (masked patches become a learned token)")
        if tokens.grid is None:
            raise config_error("the intern_image encoder needs image tokens with a grid "
                               "(use the intern_image_stem embedding)")
        b, n, c = tokens.x.shape
        h, w = tokens.grid
        x = tokens.x.reshape(b, h, w, c)
        before_last, hidden = None, []
        for i, stage in enumerate(self.stages):
            out, x = self._run_stage(stage, x)
            if return_layers:
                hidden.append(out.flatten(1, 2))
            if i == len(self.stages) - 2:
                before_last = out  # stage 3 at stride 16, before its downsample (the neck's lateral input)
        x = out.permute(0, 3, 1, 2)
        if self.neck is not None:
            lat = self.neck["lateral"](before_last.permute(0, 3, 1, 2))
            up = self.neck["up"](x)[:, :, :lat.shape[2], :lat.shape[3]]  # odd stride-16 grids: crop
            x = up + lat
        if self.head is not None:
            x = self.head(x)
        z = x.flatten(2).transpose(1, 2)
        return (z, hidden[:-1] + [z]) if return_layers else z


def _resolve_size(size, channels, depths, groups, layer_scale, post_norm):
    if size:
        key = size.lower()
        if key not in SIZES:
            raise config_error(f"unknown InternImage size '{size}' (valid: {', '.join(s.upper() for s in SIZES)})",
                               "size")
        preset = SIZES[key]
        given = {"channels": channels or None, "depths": depths, "groups": groups}
        clash = [k for k, v in given.items() if v is not None and v != preset[k]]
        if clash:
            raise config_error(f"size '{size}' fixes {', '.join(clash)}: remove them or remove 'size'", clash[0])
        channels, depths, groups = preset["channels"], preset["depths"], preset["groups"]
        layer_scale = preset["layer_scale"] if layer_scale is None else layer_scale
        post_norm = preset["post_norm"] if post_norm is None else post_norm
    if not channels or depths is None or groups is None:
        raise config_error("give 'size' (T, S or B) or all of 'channels', 'depths' and 'groups'")
    if len(depths) != len(groups) or len(depths) < 2:
        raise config_error(f"depths and groups need one entry per stage (>= 2 stages), got {depths} and {groups}",
                           "groups")
    return channels, list(depths), list(groups), layer_scale, bool(post_norm)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
