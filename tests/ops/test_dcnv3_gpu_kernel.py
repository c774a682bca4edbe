"""CUDA kernel against the reference (forward and backward). Skipped without a GPU; the CPU counterparts
are test_dcnv3_kernel_math.py (same index arithmetic) and test_dcnv3_reference_math.py."""
import os
import sys

import pytest
import torch

from m3i_modular.ops.dcnv3 import dcnv3, dcnv3_reference

sys.path.insert(0, os.path.dirname(__file__))
from dcnv3_ties import away_from_ties  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CONFIGS = [  # kernel_h, kernel_w, stride, pad, dilation, offset_scale, group, group_channels
    (3, 3, 1, 1, 1, 1.0, 4, 16),
    (3, 3, 2, 1, 2, 0.7, 2, 8),
    (2, 3, 1, 1, 1, 1.5, 3, 5),
    (3, 3, 1, 1, 1, 1.0, 1, 40),
    (5, 5, 1, 2, 1, 2.0, 8, 32),
]
# Relative to the largest reference value; fp32 must agree to 1e-5 (float accumulation both sides).
TOLERANCE = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def inputs(cfg, dtype, seed):
    kh, kw, st, pad, dil, os, g, c = cfg
    n, h, w = 2, 11, 9
    h_out = (h + 2 * pad - (dil * (kh - 1) + 1)) // st + 1
    w_out = (w + 2 * pad - (dil * (kw - 1) + 1)) // st + 1
    gen = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(n, h, w, g * c, generator=gen, device="cuda")
    off = torch.randn(n, h_out, w_out, g * kh * kw * 2, generator=gen, device="cuda") * 2
    mask = torch.randn(n, h_out, w_out, g, kh * kw, generator=gen, device="cuda").softmax(-1).flatten(3)
    return [t.to(dtype) for t in (x, off, mask)], (kh, kw, st, st, pad, pad, dil, dil, g, c, os)


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_kernel_matches_reference_forward_and_backward(cfg, dtype):
    (x, off, mask), args = inputs(cfg, dtype, seed=0)
    leaves = [t.clone().requires_grad_() for t in (x, off, mask)]
    out = dcnv3(*leaves, *args, use_kernel=True)
    gout = torch.randn_like(out)
    grads = torch.autograd.grad(out, leaves, gout)
    # The oracle sees the same low-precision values, upcast to float64.
    ref_leaves = [t.double().requires_grad_() for t in (x, off, mask)]
    ref = dcnv3_reference(*ref_leaves, *args)
    ref_grads = torch.autograd.grad(ref, ref_leaves, gout.double())
    assert out.dtype == dtype and torch.isfinite(out).all()
    tol = TOLERANCE[dtype]
    assert rel_err(out, ref) < tol
    kh, kw, st, pad, dil, os_, g_, _ = cfg
    keep = away_from_ties(off, kh, kw, st, pad, dil, g_, os_, out.shape[1], out.shape[2])
    for name, g, r in zip(("input", "offset", "mask"), grads, ref_grads):
        assert g.dtype == dtype, name
        if name == "offset":  # one-sided derivative at pixel centres (dcnv3_ties.py)
            g, r = g[keep], r[keep]
        assert rel_err(g, r) < tol * (4 if dtype != torch.float32 else 1), name


def test_kernel_writes_every_output_and_dispatches_by_device():
    (x, off, mask), args = inputs(CONFIGS[0], torch.float32, seed=1)
    out = dcnv3(x, off, mask, *args)
    torch.testing.assert_close(out.cpu(), dcnv3(x.cpu(), off.cpu(), mask.cpu(), *args), atol=1e-5, rtol=1e-5)
