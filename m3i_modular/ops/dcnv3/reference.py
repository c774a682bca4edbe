"""Pure-PyTorch DCNv3 (grid_sample based): the CPU path and the oracle for the CUDA kernels.

Conventions follow InternImage's CUDA kernel (the one its checkpoints were trained with):
- sampling point p of a group enumerates the kernel x-major: p = i * kernel_h + j, i over kernel_w, j over kernel_h;
- offsets are (x, y) pairs per point, masks already normalised over a group's points;
- the location of point (i, j) for output pixel (h, w), in input pixel-index coordinates (pixel centres at
  integers), is  x = w*stride_w - pad_w + c_w + (i*dilation_w - c_w + dx) * offset_scale  with
  c_w = dilation_w*(kernel_w-1)//2 (likewise y), i.e. offset_scale scales the regular grid too;
- bilinear interpolation, zeros outside the input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def check_dcnv3_args(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                     dilation_h, dilation_w, group, group_channels) -> tuple:
    """Validate shapes; returns (H_out, W_out). Raises ValueError naming the offending argument."""
    for name, t in (("input", input), ("offset", offset), ("mask", mask)):
        if t.dim() != 4:
            raise ValueError(f"dcnv3: {name} must be 4-D channels-last (N, H, W, C), got shape {tuple(t.shape)}")
    for name, v in (("kernel_h", kernel_h), ("kernel_w", kernel_w), ("stride_h", stride_h),
                    ("stride_w", stride_w), ("dilation_h", dilation_h), ("dilation_w", dilation_w),
                    ("group", group), ("group_channels", group_channels)):
        if int(v) < 1:
            raise ValueError(f"dcnv3: {name} must be >= 1, got {v}")
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"dcnv3: pad must be >= 0, got ({pad_h}, {pad_w})")
    n, h, w, c = input.shape
    if c != group * group_channels:
        raise ValueError(f"dcnv3: input has {c} channels but group*group_channels = {group}*{group_channels}")
    h_out = output_size(h, kernel_h, stride_h, pad_h, dilation_h)
    w_out = output_size(w, kernel_w, stride_w, pad_w, dilation_w)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"dcnv3: input {h}x{w} is too small for kernel {kernel_h}x{kernel_w} with this pad/dilation")
    points = kernel_h * kernel_w
    want_off = (n, h_out, w_out, group * points * 2)
    want_mask = (n, h_out, w_out, group * points)
    if tuple(offset.shape) != want_off:
        raise ValueError(f"dcnv3: offset must have shape {want_off} (N, H_out, W_out, group*kh*kw*2), "
                         f"got {tuple(offset.shape)}")
    if tuple(mask.shape) != want_mask:
        raise ValueError(f"dcnv3: mask must have shape {want_mask} (N, H_out, W_out, group*kh*kw), "
                         f"got {tuple(mask.shape)}")
    return h_out, w_out


def _base_locations(size_out, kernel, stride, pad, dilation, offset_scale, dtype, device):
    """(size_out, kernel) regular sampling coordinates along one axis, offset_scale applied."""
    centre = (dilation * (kernel - 1)) // 2
    start = torch.arange(size_out, dtype=dtype, device=device) * stride - pad + centre
    tap = (torch.arange(kernel, dtype=dtype, device=device) * dilation - centre) * offset_scale
    return start[:, None] + tap[None, :]


def dcnv3_reference(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                    dilation_h, dilation_w, group, group_channels, offset_scale):
    """DCNv3 by grid_sample; differentiable by autograd. Half/bf16 inputs are computed in float32."""
    h_out, w_out = check_dcnv3_args(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                    pad_w, dilation_h, dilation_w, group, group_channels)
    out_dtype = input.dtype
    if input.dtype in (torch.float16, torch.bfloat16):
        # Sampling coordinates in half precision would be off by up to ~0.03 px at 56 px: compute in fp32.
        input, offset, mask = input.float(), offset.float(), mask.float()
    offset, mask = offset.to(input.dtype), mask.to(input.dtype)
    n, h, w, _ = input.shape
    g, c, p = group, group_channels, kernel_h * kernel_w
    dt, dev = input.dtype, input.device

    xs = _base_locations(w_out, kernel_w, stride_w, pad_w, dilation_w, offset_scale, dt, dev)  # (Wo, kw)
    ys = _base_locations(h_out, kernel_h, stride_h, pad_h, dilation_h, offset_scale, dt, dev)  # (Ho, kh)
    # Point order p = i*kernel_h + j (i: x tap, j: y tap) -> grids of shape (Ho, Wo, kw, kh) flattened to P.
    base_x = xs[None, :, :, None].expand(h_out, w_out, kernel_w, kernel_h).reshape(h_out, w_out, 1, p)
    base_y = ys[:, None, None, :].expand(h_out, w_out, kernel_w, kernel_h).reshape(h_out, w_out, 1, p)
    off = offset.reshape(n, h_out, w_out, g, p, 2)
    loc_x = base_x + off[..., 0] * offset_scale  # (N, Ho, Wo, G, P)
    loc_y = base_y + off[..., 1] * offset_scale
    # grid_sample, align_corners=False: pixel index k has its centre at normalised (2k + 1) / size - 1.
    grid = torch.stack(((2 * loc_x + 1) / w - 1, (2 * loc_y + 1) / h - 1), dim=-1)
    grid = grid.permute(0, 3, 1, 2, 4, 5).reshape(n * g, h_out * w_out, p, 2)
    feats = input.reshape(n, h, w, g, c).permute(0, 3, 4, 1, 2).reshape(n * g, c, h, w)
    sampled = F.grid_sample(feats, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    weights = mask.reshape(n, h_out, w_out, g, p).permute(0, 3, 1, 2, 4).reshape(n * g, 1, h_out * w_out, p)
    out = (sampled * weights).sum(-1)  # (N*G, C, Ho*Wo)
    out = out.reshape(n, g, c, h_out, w_out).permute(0, 3, 4, 1, 2).reshape(n, h_out, w_out, g * c)
    return out.to(out_dtype)
