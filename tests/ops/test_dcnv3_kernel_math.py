"""CPU mirrors of the CUDA kernels in m3i_modular/ops/dcnv3/csrc/dcnv3_kernels.cu.

No GPU is needed to check the kernels' index arithmetic: these loops repeat it statement by statement on
flat tensors (thread decode, pointer offsets, corner validity, the lane-segment split of the backward
reduction) and are compared with the grid_sample reference and its autograd gradients. Keep them in sync
with the .cu file.
"""
import math
import os
import sys

import pytest
import torch

from m3i_modular.ops.dcnv3 import dcnv3_reference

sys.path.insert(0, os.path.dirname(__file__))
from dcnv3_ties import away_from_ties  # noqa: E402

CONFIGS = [  # kernel_h, kernel_w, stride, pad, dilation, offset_scale, group, group_channels
    (3, 3, 1, 1, 1, 1.0, 2, 3),
    (3, 3, 2, 1, 2, 0.7, 2, 4),
    (2, 3, 1, 1, 1, 1.5, 1, 5),
    (3, 3, 1, 1, 1, 1.0, 1, 40),  # more channels than a warp: lanes loop twice
]


def segment_width(c):
    seg = 1
    while seg < c and seg < 32:
        seg <<= 1
    return seg


def bilinear_setup(y, x, height, width, row_stride, col_stride, channel_base):
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    ptr, valid = [], []
    for k in range(4):
        yy, xx = (y0, y0 + 1)[k >> 1], (x0, x0 + 1)[k & 1]
        valid.append(0 <= yy <= height - 1 and 0 <= xx <= width - 1)
        ptr.append(yy * row_stride + xx * col_stride + channel_base)
    return ptr, valid, ly, lx


def decode_location(loc, s):
    t = loc
    g = t % s["group"]; t //= s["group"]
    w = t % s["width_out"]; t //= s["width_out"]
    h = t % s["height_out"]; n = t // s["height_out"]
    return n, h, w, g


def forward_mirror(inp, off, msk, s):
    """dcnv3_forward_kernel: one 'thread' per output element."""
    inp, off, msk = inp.flatten().tolist(), off.flatten().tolist(), msk.flatten().tolist()
    total = s["batch"] * s["height_out"] * s["width_out"] * s["group"] * s["group_channels"]
    out = [float("nan")] * total
    points = s["kernel_h"] * s["kernel_w"]
    col_stride = s["group"] * s["group_channels"]
    row_stride = s["width_in"] * col_stride
    cw, ch = (s["dilation_w"] * (s["kernel_w"] - 1)) >> 1, (s["dilation_h"] * (s["kernel_h"] - 1)) >> 1
    for idx in range(total):
        c = idx % s["group_channels"]
        loc = idx // s["group_channels"]
        n, h, w, g = decode_location(loc, s)
        image = n * s["height_in"] * row_stride
        base_x = w * s["stride_w"] - s["pad_w"] + cw
        base_y = h * s["stride_h"] - s["pad_h"] + ch
        acc = 0.0
        for i in range(s["kernel_w"]):
            for j in range(s["kernel_h"]):
                p = i * s["kernel_h"] + j
                x = base_x + (i * s["dilation_w"] - cw + off[loc * points * 2 + 2 * p]) * s["offset_scale"]
                y = base_y + (j * s["dilation_h"] - ch + off[loc * points * 2 + 2 * p + 1]) * s["offset_scale"]
                if not (y > -1 and x > -1 and y < s["height_in"] and x < s["width_in"]):
                    continue
                ptr, valid, ly, lx = bilinear_setup(y, x, s["height_in"], s["width_in"], row_stride, col_stride,
                                                    g * s["group_channels"] + c)
                wts = [(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx]
                val = sum(wts[k] * inp[image + ptr[k]] for k in range(4) if valid[k])
                acc += msk[loc * points + p] * val
        out[idx] = acc
    return out


def backward_mirror(gout, inp, off, msk, s):
    """dcnv3_backward_kernel: a segment of `seg` lanes per location, lanes striding over channels."""
    gout, inp, off, msk = (t.flatten().tolist() for t in (gout, inp, off, msk))
    points = s["kernel_h"] * s["kernel_w"]
    locations = s["batch"] * s["height_out"] * s["width_out"] * s["group"]
    seg = segment_width(s["group_channels"])
    grad_in = [0.0] * len(inp)
    grad_off = [float("nan")] * len(off)
    grad_msk = [float("nan")] * len(msk)
    col_stride = s["group"] * s["group_channels"]
    row_stride = s["width_in"] * col_stride
    cw, ch = (s["dilation_w"] * (s["kernel_w"] - 1)) >> 1, (s["dilation_h"] * (s["kernel_h"] - 1)) >> 1
    for loc in range(locations):
        n, h, w, g = decode_location(loc, s)
        image = n * s["height_in"] * row_stride
        base_x = w * s["stride_w"] - s["pad_w"] + cw
        base_y = h * s["stride_h"] - s["pad_h"] + ch
        gbase = loc * s["group_channels"]
        for i in range(s["kernel_w"]):
            for j in range(s["kernel_h"]):
                p = loc * points + i * s["kernel_h"] + j
                lanes = [[0.0, 0.0, 0.0] for _ in range(seg)]  # per-lane (g_x, g_y, g_m) before the shuffle
                x = base_x + (i * s["dilation_w"] - cw + off[2 * p]) * s["offset_scale"]
                y = base_y + (j * s["dilation_h"] - ch + off[2 * p + 1]) * s["offset_scale"]
                if y > -1 and x > -1 and y < s["height_in"] and x < s["width_in"]:
                    m = msk[p]
                    ptr, valid, ly, lx = bilinear_setup(y, x, s["height_in"], s["width_in"], row_stride,
                                                        col_stride, g * s["group_channels"])
                    hy, hx = 1 - ly, 1 - lx
                    wts = [hy * hx, hy * lx, ly * hx, ly * lx]
                    for lane in range(seg):
                        for c in range(lane, s["group_channels"], seg):
                            top = gout[gbase + c]
                            top_m = top * m
                            v = [inp[image + ptr[k] + c] if valid[k] else 0.0 for k in range(4)]
                            for k in range(4):
                                if valid[k]:
                                    grad_in[image + ptr[k] + c] += wts[k] * top_m
                            val = sum(wts[k] * v[k] for k in range(4))
                            lanes[lane][2] += top * val
                            lanes[lane][0] += top_m * (hy * (v[1] - v[0]) + ly * (v[3] - v[2]))
                            lanes[lane][1] += top_m * (hx * (v[2] - v[0]) + lx * (v[3] - v[1]))
                g_x, g_y, g_m = (sum(lane[q] for lane in lanes) for q in range(3))
                grad_off[2 * p] = g_x * s["offset_scale"]
                grad_off[2 * p + 1] = g_y * s["offset_scale"]
                grad_msk[p] = g_m
    return grad_in, grad_off, grad_msk


def setup(cfg, seed, size=(2, 5, 4)):
    kh, kw, st, pad, dil, os, g, c = cfg
    n, h, w = size
    h_out = (h + 2 * pad - (dil * (kh - 1) + 1)) // st + 1
    w_out = (w + 2 * pad - (dil * (kw - 1) + 1)) // st + 1
    gen = torch.Generator().manual_seed(seed)
    inp = torch.randn(n, h, w, g * c, generator=gen, dtype=torch.float64)
    off = torch.randn(n, h_out, w_out, g * kh * kw * 2, generator=gen, dtype=torch.float64) * 2
    msk = torch.rand(n, h_out, w_out, g * kh * kw, generator=gen, dtype=torch.float64)
    s = dict(batch=n, height_in=h, width_in=w, height_out=h_out, width_out=w_out, kernel_h=kh, kernel_w=kw,
             stride_h=st, stride_w=st, pad_h=pad, pad_w=pad, dilation_h=dil, dilation_w=dil, group=g,
             group_channels=c, offset_scale=os)
    args = (kh, kw, st, st, pad, pad, dil, dil, g, c, os)
    return inp, off, msk, s, args


@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_kernel_indexing_matches_reference(cfg):
    inp, off, msk, s, args = setup(cfg, seed=3)
    ref = dcnv3_reference(inp, off, msk, *args)
    mirror = torch.tensor(forward_mirror(inp, off, msk, s), dtype=torch.float64).reshape(ref.shape)
    torch.testing.assert_close(mirror, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_backward_kernel_indexing_matches_autograd(cfg):
    inp, off, msk, s, args = setup(cfg, seed=4)
    leaves = [t.clone().requires_grad_() for t in (inp, off, msk)]
    out = dcnv3_reference(*leaves, *args)
    gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = torch.autograd.grad(out, leaves, gout)
    got = backward_mirror(gout, inp, off, msk, s)
    for e, g_ in zip(expected, got):
        torch.testing.assert_close(torch.tensor(g_, dtype=torch.float64).reshape(e.shape), e, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_backward_mirror_differs_from_autograd_only_at_pixel_centre_ties(dtype):
    """The GPU test's low-precision offsets land exactly on pixel centres; there (and only there) the
    kernel's one-sided derivative may differ from grid_sample's, so the GPU test masks those entries."""
    cfg = (3, 3, 1, 1, 1, 1.0, 4, 2)
    inp, off, msk, s, args = setup(cfg, seed=0, size=(2, 11, 9))
    off = off.to(dtype).double()  # the values a half-precision run sees
    leaves = [t.clone().requires_grad_() for t in (inp, off, msk)]
    out = dcnv3_reference(*leaves, *args)
    gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = torch.autograd.grad(out, leaves, gout)[1]
    got = torch.tensor(backward_mirror(gout, inp, off, msk, s)[1], dtype=torch.float64).reshape(expected.shape)
    keep = away_from_ties(off, 3, 3, 1, 1, 1, 4, 1.0, s["height_out"], s["width_out"])
    differs = (got - expected).abs() > 1e-8
    assert (~keep).sum() > 0 and differs.sum() > 0  # the case the GPU test has to handle does occur
    assert not (differs & keep).any()
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-10, rtol=0)


def test_segment_width_covers_channels_within_a_warp():
    for c, want in ((1, 1), (3, 4), (16, 16), (17, 32), (32, 32), (40, 32), (112, 32)):
        seg = segment_width(c)
        assert seg == want and 32 % seg == 0
