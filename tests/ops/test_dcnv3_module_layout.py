"""DCNv3 module: InternImage's parameter names and shapes, and its analytic behaviour at initialisation."""
import pytest
import torch
import torch.nn.functional as F

from m3i_modular.errors import ConfigError
from m3i_modular.ops.dcnv3 import DCNv3

# Names and shapes of InternImage's ops_dcnv3/modules/dcnv3.py DCNv3(channels=C, group=G).
def internimage_layout(c, g, k=3, dw=3, cfs=False):
    names = {
        "dw_conv.0.weight": (c, 1, dw, dw), "dw_conv.0.bias": (c,),
        "dw_conv.1.1.weight": (c,), "dw_conv.1.1.bias": (c,),
        "offset.weight": (g * k * k * 2, c), "offset.bias": (g * k * k * 2,),
        "mask.weight": (g * k * k, c), "mask.bias": (g * k * k,),
        "input_proj.weight": (c, c), "input_proj.bias": (c,),
        "output_proj.weight": (c, c), "output_proj.bias": (c,),
    }
    if cfs:
        names.update({"center_feature_scale_proj_weight": (g, c), "center_feature_scale_proj_bias": (g,)})
    return names


@pytest.mark.parametrize("cfs", [False, True])
def test_state_dict_matches_internimage_layout(cfs):
    m = DCNv3(channels=32, group=4, center_feature_scale=cfs)
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert got == internimage_layout(32, 4, cfs=cfs)


def test_initial_layer_is_mean_over_regular_grid():
    torch.manual_seed(0)
    m = DCNv3(channels=16, group=2).double()
    x = torch.randn(2, 6, 5, 16, dtype=torch.float64)
    value = m.input_proj(x).permute(0, 3, 1, 2)
    # zero offsets + uniform softmax mask = 3x3 average with zero padding
    mean = F.avg_pool2d(value, 3, stride=1, padding=1, count_include_pad=True).permute(0, 2, 3, 1)
    torch.testing.assert_close(m(x), m.output_proj(mean), atol=1e-12, rtol=0)


def test_center_feature_scale_gate_starts_at_half():
    torch.manual_seed(0)
    plain = DCNv3(channels=16, group=2).double()
    gated = DCNv3(channels=16, group=2, center_feature_scale=True).double()
    gated.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(1, 5, 5, 16, dtype=torch.float64)
    value = plain.input_proj(x)
    deform = F.linear(plain(x) - plain.output_proj.bias, torch.linalg.inv(plain.output_proj.weight))
    expected = plain.output_proj(0.5 * deform + 0.5 * value)
    torch.testing.assert_close(gated(x), expected, atol=1e-9, rtol=0)


def test_gradients_reach_offset_and_mask_branches():
    torch.manual_seed(0)
    m = DCNv3(channels=8, group=2)
    x = torch.randn(1, 5, 5, 8)
    # At init the offset/mask weights are zero, which blocks gradient into dw_conv; leave init first.
    with torch.no_grad():
        m.offset.weight.normal_(std=0.1)
        m.mask.weight.normal_(std=0.1)
    m(x).square().sum().backward()
    for name in ("offset.weight", "mask.weight", "dw_conv.0.weight", "input_proj.weight"):
        assert dict(m.named_parameters())[name].grad.abs().sum() > 0, name


def test_bad_group_is_config_error():
    with pytest.raises(ConfigError, match="divisible by group"):
        DCNv3(channels=30, group=4)
