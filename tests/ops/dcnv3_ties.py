"""Where a DCNv3 sampling coordinate sits on a pixel centre, the bilinear weight's derivative in that
coordinate is one-sided: the CUDA kernel takes floorf(x) = x (the right side), while grid_sample's
normalise/unnormalise round trip can land a hair below and take the left side. Both are valid
subgradients, so offset gradients are compared only away from such ties. Random float32 offsets never hit
one; fp16/bf16 offsets (randn * 2 rounded) hit dozens per test tensor."""
import torch


def sampling_coordinates(offset, kernel_h, kernel_w, stride, pad, dilation, group, offset_scale, h_out, w_out):
    """(x, y) location of every offset entry, float64, laid out like `offset` (x at even, y at odd)."""
    n = offset.shape[0]
    p = kernel_h * kernel_w
    i = torch.arange(kernel_w, dtype=torch.float64).repeat_interleave(kernel_h)  # point p = i * kernel_h + j
    j = torch.arange(kernel_h, dtype=torch.float64).repeat(kernel_w)
    cw, ch = (dilation * (kernel_w - 1)) // 2, (dilation * (kernel_h - 1)) // 2
    base_x = (torch.arange(w_out, dtype=torch.float64) * stride - pad + cw)[None, :, None, None]
    base_y = (torch.arange(h_out, dtype=torch.float64) * stride - pad + ch)[:, None, None, None]
    off = offset.detach().double().cpu().reshape(n, h_out, w_out, group, p, 2)
    x = base_x + (i * dilation - cw + off[..., 0]) * offset_scale
    y = base_y + (j * dilation - ch + off[..., 1]) * offset_scale
    return torch.stack((x, y), -1).reshape(offset.shape)


def away_from_ties(offset, kernel_h, kernel_w, stride, pad, dilation, group, offset_scale, h_out, w_out,
                   eps=1e-4):
    """Boolean mask over `offset`: True where the entry's coordinate is not within eps of an integer."""
    loc = sampling_coordinates(offset, kernel_h, kernel_w, stride, pad, dilation, group, offset_scale,
                               h_out, w_out)
    return ((loc - loc.round()).abs() > eps).to(offset.device)
