"""DCNv3 layer with InternImage's structure and parameter names, so its checkpoints load 1:1.

Parameters: input_proj, output_proj, offset, mask (Linear); dw_conv.0 (depth-wise Conv2d),
dw_conv.1.1 (LayerNorm, eps 1e-6, behind a channels-last permute at dw_conv.1.0), dw_conv.2 (GELU);
with center_feature_scale also center_feature_scale_proj_weight / _bias.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .kernel import dcnv3


class _ToChannelsLast(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class DCNv3(nn.Module):
    """Deformable convolution v3 on channels-last features (N, H, W, channels) -> (N, H_out, W_out, channels)."""

    def __init__(self, *, channels: int = 64, kernel_size: int = 3, stride: int = 1, pad: int = 1,
                 dilation: int = 1, group: int = 4, offset_scale: float = 1.0, dw_kernel_size: int = 3,
                 center_feature_scale: bool = False):
        super().__init__()
        if channels % group != 0:
            raise ConfigError(f"DCNv3 channels ({channels}) must be divisible by group ({group})")
        if dw_kernel_size % 2 == 0:
            raise ConfigError(f"DCNv3 dw_kernel_size must be odd to keep the spatial size, got {dw_kernel_size}")
        self.channels, self.kernel_size, self.stride, self.pad = channels, kernel_size, stride, pad
        self.dilation, self.group, self.group_channels = dilation, group, channels // group
        self.offset_scale, self.center_feature_scale = offset_scale, center_feature_scale
        points = kernel_size * kernel_size
        self.dw_conv = nn.Sequential(
            nn.Conv2d(channels, channels, dw_kernel_size, stride=1, padding=(dw_kernel_size - 1) // 2,
                      groups=channels),
            nn.Sequential(_ToChannelsLast(), nn.LayerNorm(channels, eps=1e-6)),
            nn.GELU())
        self.offset = nn.Linear(channels, group * points * 2)
        self.mask = nn.Linear(channels, group * points)
        self.input_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)
        if center_feature_scale:
            self.center_feature_scale_proj_weight = nn.Parameter(torch.zeros(group, channels))
            self.center_feature_scale_proj_bias = nn.Parameter(torch.zeros(group))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Zero offsets and uniform masks at init: the layer starts as a mean over the regular grid.
        for lin in (self.offset, self.mask):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        for lin in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        value = self.input_proj(x)
        feats = self.dw_conv(x.permute(0, 3, 1, 2))  # (N, H, W, C) after the permute inside
        offset = self.offset(feats)
        mask = F.softmax(self.mask(feats).reshape(n, h, w, self.group, -1), dim=-1).reshape(n, h, w, -1)
        out = dcnv3(value, offset, mask.to(value.dtype), self.kernel_size, self.kernel_size, self.stride,
                    self.stride, self.pad, self.pad, self.dilation, self.dilation, self.group, self.group_channels,
                    self.offset_scale)
        if self.center_feature_scale:
            # Per-group gate mixing the deformable output with the projected input at the same pixel.
            gate = torch.sigmoid(F.linear(feats, self.center_feature_scale_proj_weight,
                                          self.center_feature_scale_proj_bias))
            gate = gate.repeat_interleave(self.group_channels, dim=-1)
            out = out * (1 - gate) + value * gate
        return self.output_proj(out)
