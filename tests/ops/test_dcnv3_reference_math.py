"""The grid_sample reference against a naive per-pixel loop, analytic cases, and float64 gradcheck."""
import math

import pytest
import torch
import torch.nn.functional as F

from m3i_modular.ops.dcnv3 import dcnv3, dcnv3_reference

CONFIGS = [  # kernel_h, kernel_w, stride, pad, dilation, offset_scale
    (3, 3, 1, 1, 1, 1.0),
    (3, 3, 2, 1, 1, 2.0),
    (3, 3, 1, 2, 2, 0.5),
    (2, 3, 1, 1, 1, 1.5),
    (5, 5, 2, 2, 1, 1.0),
]


def make_inputs(n, h, w, g, c, kh, kw, stride, pad, dil, dtype=torch.float64, seed=0, spread=2.0):
    gen = torch.Generator().manual_seed(seed)
    h_out = (h + 2 * pad - (dil * (kh - 1) + 1)) // stride + 1
    w_out = (w + 2 * pad - (dil * (kw - 1) + 1)) // stride + 1
    x = torch.randn(n, h, w, g * c, generator=gen, dtype=dtype)
    off = torch.randn(n, h_out, w_out, g * kh * kw * 2, generator=gen, dtype=dtype) * spread
    mask = torch.randn(n, h_out, w_out, g, kh * kw, generator=gen, dtype=dtype).softmax(-1).flatten(3)
    return x, off, mask


def naive_dcnv3(x, off, mask, kh, kw, stride, pad, dil, g, c, os):
    """Straight from the formula: p0 + (p_k * dilation + dp) * offset_scale, bilinear, zeros outside."""
    n, h, w, _ = x.shape
    _, h_out, w_out, _ = off.shape
    out = torch.zeros(n, h_out, w_out, g * c, dtype=x.dtype)
    cy, cx = dil * (kh - 1) // 2, dil * (kw - 1) // 2

    def pixel(b, yy, xx, gi):
        if 0 <= yy < h and 0 <= xx < w:
            return x[b, yy, xx, gi * c:(gi + 1) * c]
        return torch.zeros(c, dtype=x.dtype)

    for b in range(n):
        for ho in range(h_out):
            for wo in range(w_out):
                p0y, p0x = ho * stride - pad + cy, wo * stride - pad + cx
                for gi in range(g):
                    acc = torch.zeros(c, dtype=x.dtype)
                    for i in range(kw):        # InternImage order: x tap outer, y tap inner
                        for j in range(kh):
                            k = i * kh + j
                            dx = off[b, ho, wo, (gi * kh * kw + k) * 2].item()
                            dy = off[b, ho, wo, (gi * kh * kw + k) * 2 + 1].item()
                            sx = p0x + (i * dil - cx + dx) * os
                            sy = p0y + (j * dil - cy + dy) * os
                            x0, y0 = math.floor(sx), math.floor(sy)
                            fx, fy = sx - x0, sy - y0
                            val = ((1 - fy) * (1 - fx) * pixel(b, y0, x0, gi) + (1 - fy) * fx * pixel(b, y0, x0 + 1, gi)
                                   + fy * (1 - fx) * pixel(b, y0 + 1, x0, gi) + fy * fx * pixel(b, y0 + 1, x0 + 1, gi))
                            acc += mask[b, ho, wo, gi * kh * kw + k] * val
                    out[b, ho, wo, gi * c:(gi + 1) * c] = acc
    return out


@pytest.mark.parametrize("cfg", CONFIGS)
def test_reference_matches_naive_loop(cfg):
    kh, kw, s, p, d, os = cfg
    g, c = 2, 3
    x, off, mask = make_inputs(1, 6, 7, g, c, kh, kw, s, p, d)
    ref = dcnv3_reference(x, off, mask, kh, kw, s, s, p, p, d, d, g, c, os)
    torch.testing.assert_close(ref, naive_dcnv3(x, off, mask, kh, kw, s, p, d, g, c, os), atol=1e-12, rtol=0)


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[3]])
def test_reference_gradcheck_float64(cfg):
    kh, kw, s, p, d, os = cfg
    x, off, mask = make_inputs(1, 4, 5, 2, 2, kh, kw, s, p, d, spread=1.3, seed=1)
    args = (kh, kw, s, s, p, p, d, d, 2, 2, os)
    inputs = tuple(t.clone().requires_grad_() for t in (x, off, mask))
    assert torch.autograd.gradcheck(lambda a, b, m: dcnv3_reference(a, b, m, *args), inputs)


def shifted(x, dy, dx):
    """out[h, w] = x[h + dy, w + dx], zero outside (channels-last)."""
    n, h, w, c = x.shape
    padded = F.pad(x, (0, 0, 2 * abs(dx) + 2, 2 * abs(dx) + 2, 2 * abs(dy) + 2, 2 * abs(dy) + 2))
    oy, ox = 2 * abs(dy) + 2 + dy, 2 * abs(dx) + 2 + dx
    return padded[:, oy:oy + h, ox:ox + w]


@pytest.mark.parametrize("k", range(9))
def test_one_hot_mask_is_shift_to_grid_point(k):
    x, off, _ = make_inputs(2, 5, 6, 2, 3, 3, 3, 1, 1, 1)
    off.zero_()
    mask = F.one_hot(torch.full((2, 5, 6, 2), k), 9).to(x.dtype).flatten(3)
    i, j = divmod(k, 3)  # point k = i * kernel_h + j: i is the x tap, j the y tap
    out = dcnv3(x, off, mask, 3, 3, 1, 1, 1, 1, 1, 1, 2, 3, 1.0)
    torch.testing.assert_close(out, shifted(x, j - 1, i - 1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shift", [(2, -1), (-3, 0), (1, 4)])
def test_integer_offset_is_shift_with_zero_fill(shift):
    dx, dy = shift
    x, off, _ = make_inputs(1, 6, 7, 2, 2, 3, 3, 1, 1, 1)
    off = off.reshape(1, 6, 7, 2, 9, 2)
    off[..., 0], off[..., 1] = float(dx), float(dy)
    mask = F.one_hot(torch.full((1, 6, 7, 2), 4), 9).to(x.dtype).flatten(3)  # centre point only
    out = dcnv3(x, off.flatten(3), mask, 3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 1.0)
    torch.testing.assert_close(out, shifted(x, dy, dx), atol=1e-12, rtol=0)


def test_offset_scale_two_equals_dilation_two():
    x, off, mask = make_inputs(2, 7, 6, 2, 3, 3, 3, 1, 1, 1, spread=1.0)
    scaled = dcnv3(x, off, mask, 3, 3, 1, 1, 1, 1, 1, 1, 2, 3, 2.0)
    dilated = dcnv3(x, 2 * off, mask, 3, 3, 1, 1, 2, 2, 2, 2, 2, 3, 1.0)  # same output size with pad 2
    assert scaled.shape == dilated.shape == x.shape
    torch.testing.assert_close(scaled, dilated, atol=1e-12, rtol=0)


def test_low_precision_reference_keeps_dtype_and_tracks_float64():
    x, off, mask = make_inputs(1, 5, 5, 2, 4, 3, 3, 1, 1, 1)
    exact = dcnv3_reference(x, off, mask, 3, 3, 1, 1, 1, 1, 1, 1, 2, 4, 1.0)
    for dtype, tol in ((torch.float16, 5e-3), (torch.bfloat16, 4e-2)):
        out = dcnv3_reference(x.to(dtype), off.to(dtype), mask.to(dtype), 3, 3, 1, 1, 1, 1, 1, 1, 2, 4, 1.0)
        assert out.dtype == dtype
        assert (out.double() - exact).abs().max() < tol * exact.abs().max()


def test_bad_shapes_raise_clear_errors():
    x, off, mask = make_inputs(1, 5, 5, 2, 4, 3, 3, 1, 1, 1)
    with pytest.raises(ValueError, match="offset must have shape"):
        dcnv3(x, off[..., :-2], mask, 3, 3, 1, 1, 1, 1, 1, 1, 2, 4, 1.0)
    with pytest.raises(ValueError, match="group\\*group_channels"):
        dcnv3(x, off, mask, 3, 3, 1, 1, 1, 1, 1, 1, 4, 4, 1.0)
