"""DCNv3 entry point: the CUDA kernel for CUDA tensors when it can be loaded, else the reference.

Never builds at import or for CPU tensors. The first call on a CUDA tensor loads the cached build
(JIT-compiling it once if needed, unless M3I_OPS_JIT=0); on failure it warns once and uses the reference.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import torch

from ..loader import OpBuildError, OpSpec, load
from .reference import check_dcnv3_args, dcnv3_reference

_CSRC = Path(__file__).resolve().parent / "csrc"
DCNV3_SPEC = OpSpec(name="m3i_dcnv3", sources=(str(_CSRC / "dcnv3_binding.cpp"), str(_CSRC / "dcnv3_kernels.cu")))

_state = {"tried": False, "ok": False, "reason": ""}


def kernel_available() -> bool:
    """Load the compiled op if possible (building it when JIT is allowed); remembers the answer."""
    if not _state["tried"]:
        _state["tried"] = True
        try:
            load(DCNV3_SPEC, build_if_missing=os.environ.get("M3I_OPS_JIT", "1") != "0")
            _state["ok"] = True
        except (OpBuildError, OSError, RuntimeError) as e:  # a broken cached library is not fatal either
            _state["reason"] = str(e)
            warnings.warn(f"DCNv3 CUDA kernel unavailable, using the (slower) PyTorch reference: {e}",
                          stacklevel=3)
    return _state["ok"]


class _DCNv3Function(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                dilation_w, group, group_channels, offset_scale):
        ctx.args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
                    group_channels, float(offset_scale))
        ctx.save_for_backward(input, offset, mask)
        return torch.ops.m3i_dcnv3.forward(input, offset, mask, *ctx.args)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        input, offset, mask = ctx.saved_tensors
        grads = torch.ops.m3i_dcnv3.backward(grad_output.contiguous(), input, offset, mask, *ctx.args)
        return (*grads,) + (None,) * 11


def dcnv3(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int, kernel_w: int,
          stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int, dilation_w: int, group: int,
          group_channels: int, offset_scale: float, *, use_kernel: Optional[bool] = None) -> torch.Tensor:
    """InternImage DCNv3 on channels-last tensors.

    input (N, H, W, group*group_channels); offset (N, H_out, W_out, group*kh*kw*2) as (x, y) pairs, point
    p = i*kernel_h + j (i: x tap, j: y tap); mask (N, H_out, W_out, group*kh*kw), softmax-normalised per
    group. Returns (N, H_out, W_out, group*group_channels). `use_kernel`: None = kernel for CUDA tensors when
    available; False = always the reference; True = the kernel or an OpBuildError.
    offset and mask are cast to input's dtype (as under InternImage's AMP).
    """
    args = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels)
    check_dcnv3_args(input, offset, mask, *args)
    want = input.is_cuda and use_kernel is not False
    if want and use_kernel and not kernel_available():
        raise OpBuildError(_state["reason"])
    if want and input.dtype in (torch.float32, torch.float16, torch.bfloat16) and kernel_available():
        offset, mask = offset.to(input.dtype), mask.to(input.dtype)
        return _DCNv3Function.apply(input.contiguous(), offset.contiguous(), mask.contiguous(), *args,
                                    float(offset_scale))
    return dcnv3_reference(input, offset, mask, *args, offset_scale)
