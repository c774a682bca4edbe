"""InternImage encoder and stem: token grids, block math, presets, errors, and its place in the model."""
import math

import pytest
import torch
import torch.nn.functional as F

from m3i_modular.errors import ConfigError
from m3i_modular.recipe.model import build_model
from m3i_modular.registry import EMBEDDINGS, ENCODERS, build

TINY = {"type": "intern_image", "channels": 8, "depths": [1, 1, 1, 1], "groups": [1, 2, 4, 8]}


def _pair(enc_over=None, dim=8):
    torch.manual_seed(0)
    stem = build(EMBEDDINGS, {"type": "intern_image_stem", "dim": dim})
    enc = build(ENCODERS, {**TINY, **(enc_over or {})})
    return stem, enc


@pytest.mark.parametrize("px,stride,grid", [(32, 32, (1, 1)), (36, 32, (2, 2)), (64, 32, (2, 2)),
                                            (32, 16, (2, 2)), (36, 16, (3, 3)), (64, 16, (4, 4))])
def test_output_grid_matches_tokens(px, stride, grid):
    stem, enc = _pair({"out_stride": stride})
    tok = stem(torch.randn(2, 3, px, px))
    assert tok.grid == (math.ceil(px / 4),) * 2 and tok.patch_size == 4
    z = enc(tok)
    assert enc.output_grid(tok.grid) == grid
    assert z.shape == (2, grid[0] * grid[1], enc.dim)
    assert enc.dim == 64  # the last stage (8 * 2 ** 3); the neck defaults to the same width


def test_neck_and_head_widths():
    _, enc = _pair({"out_stride": 16, "neck_dim": 24, "head_scale": 1.5})
    assert enc.dim == 36
    _, enc = _pair({"head_scale": 1.5})
    assert enc.dim == 96


def test_zero_layer_scale_makes_every_block_the_identity():
    """gamma = 0: the output is the stage norms and downsamples alone, computed here by hand."""
    stem, enc = _pair({"layer_scale": 0.0})
    enc.eval()
    tok = stem(torch.randn(2, 3, 32, 32))
    x = tok.x.reshape(2, 8, 8, 8)
    for i, stage in enumerate(enc.stages):
        x = F.layer_norm(x, x.shape[-1:], stage.norm.weight, stage.norm.bias, 1e-6)
        if stage.downsample is not None:
            y = F.conv2d(x.permute(0, 3, 1, 2), stage.downsample.conv.weight, stride=2, padding=1)
            x = F.layer_norm(y.permute(0, 2, 3, 1), (y.shape[1],), stage.downsample.norm.weight,
                             stage.downsample.norm.bias, 1e-6)
    torch.testing.assert_close(enc(tok), x.reshape(2, -1, x.shape[-1]))


@pytest.mark.parametrize("post_norm,layer_scale", [(False, None), (True, 0.5)])
def test_block_residual_formula(post_norm, layer_scale):
    _, enc = _pair({"post_norm": post_norm, "layer_scale": layer_scale})
    blk = enc.stages[1].blocks[0].eval()
    x = torch.randn(2, 3, 5, 16)
    g = 1.0 if layer_scale is None else layer_scale
    if post_norm:  # S/B: x + g * norm(branch(x))
        y = x + g * blk.norm1(blk.dcn(x))
        y = y + g * blk.norm2(blk.mlp(y))
    else:          # T: x + branch(norm(x))
        y = x + blk.dcn(blk.norm1(x))
        y = y + blk.mlp(blk.norm2(y))
    torch.testing.assert_close(blk(x), y)
    assert (enc.stages[0].norm is None) == post_norm


def test_gradients_reach_every_parameter_including_offsets():
    stem, enc = _pair({"out_stride": 16, "head_scale": 1.0})
    x = torch.randn(2, 3, 32, 32)
    enc(stem(x)).pow(2).mean().backward()
    for name, p in list(stem.named_parameters()) + list(enc.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert enc.stages[0].blocks[0].dcn.offset.weight.grad.abs().sum() > 0  # sampling positions learn


def test_drop_path_rates_rise_linearly_and_are_off_in_eval():
    _, enc = _pair({"depths": [1, 1, 2, 1], "drop_path": 0.4})
    rates = [b.drop_path.p for s in enc.stages for b in s.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    stem, _ = _pair()
    enc.eval()
    tok = stem(torch.randn(1, 3, 32, 32))
    torch.testing.assert_close(enc(tok), enc(tok))


def test_size_presets_and_their_errors():
    with torch.device("meta"):
        t = build(ENCODERS, {"type": "intern_image", "size": "T"})
        assert (t.channels, t.depths) == (64, [4, 4, 18, 4]) and t.stages[3].norm is not None
        b = build(ENCODERS, {"type": "intern_image", "size": "b"})
        assert b.stages[3].norm is None and b.stages[0].blocks[0].gamma1 is not None
        with pytest.raises(ConfigError, match="size 'T' fixes channels"):
            build(ENCODERS, {"type": "intern_image", "size": "T", "channels": 80})
        with pytest.raises(ConfigError, match="unknown InternImage size 'XL'"):
            build(ENCODERS, {"type": "intern_image", "size": "XL"})
        with pytest.raises(ConfigError, match="not divisible by its group count"):
            build(ENCODERS, {**TINY, "groups": [3, 2, 4, 8]})
        with pytest.raises(ConfigError, match="out_stride must be"):
            build(ENCODERS, {**TINY, "out_stride": 8})


def test_keep_is_refused_with_a_hint():
    stem, enc = _pair()
    tok = stem(torch.randn(1, 3, 32, 32))
    with pytest.raises(ConfigError, match='mask_mode to "replace"'):
        enc(tok, keep=torch.arange(4)[None])


def _model_cfg(mask_mode="drop", over=None):
    return {"embedding": {"type": "intern_image_stem", "dim": 8}, "encoder": {**TINY, **(over or {})},
            "mask_mode": mask_mode,
            "objectives": {"category": {"input": "view1", "target_view": "label",
                                        "target_embedding": {"type": "category", "num_classes": 4},
                                        "decoder": {"type": "pool"}, "target": {"type": "boltzmann"}}}}


def test_model_sees_the_encoder_output_grid_and_stride():
    model = build_model(_model_cfg(over={"out_stride": 16}), seed=0)
    enc = model.encode({"views": {"view1": torch.randn(2, 3, 64, 64)}}, "view1")
    assert enc.tokens.grid == (4, 4) and enc.tokens.patch_size == 16
    assert enc.z.shape == (2, 16, 64) and enc.tokens.x is enc.z


def test_replace_masking_runs_and_changes_the_output():
    model = build_model(_model_cfg(mask_mode="replace"), seed=0).eval()
    assert model.mask_token.shape[-1] == 8  # the stem's width, not the encoder's (64)
    img = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, ::2] = True
    plain = model.encode({"views": {"view1": img}}, "view1").z
    masked = model.encode({"views": {"view1": img}, "masks": {"view1": mask}}, "view1").z
    assert plain.shape == masked.shape and not torch.allclose(plain, masked)
    with pytest.raises(ConfigError, match="replace"):
        build_model(_model_cfg(), seed=0).encode({"views": {"view1": img}, "masks": {"view1": mask}}, "view1")


def test_first_loss_is_ln_classes():
    model = build_model(_model_cfg(), seed=0)
    out = model({"views": {"view1": torch.randn(4, 3, 32, 32)}, "label": torch.tensor([0, 1, 2, 3])})
    assert out["category_loss"].item() == pytest.approx(math.log(4), abs=1e-6)


def test_return_layers_gives_stage_maps_and_ends_with_the_output():
    stem, enc = _pair({"out_stride": 16})
    tok = stem(torch.randn(2, 3, 64, 64))
    z, hidden = enc.eval()(tok, return_layers=True)
    assert [h.shape[1:] for h in hidden[:-1]] == [(256, 8), (64, 16), (16, 32)]
    assert hidden[-1] is z and torch.equal(z, enc(tok))
