import pytest
import torch

from m3i_modular.batch_transforms.mix_views import MixViews, block_owner_map
from m3i_modular.errors import ConfigError
from m3i_modular.interfaces import Encoded, Tokens
from m3i_modular.selectors.selection import select


def _batch(b=6, size=16):
    # each image is a constant equal to its index, so every mixed pixel names its source image
    img = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 3, size, size).clone()
    geom = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]).repeat(b, 1)
    return {"views": {"view1": img}, "geometry": {"view1": geom}}


@pytest.mark.parametrize("ratio,block", [(0.5, 1), (0.5, 2), (0.3, 2), (0.7, 3)])
def test_exact_counts_per_image(ratio, block):
    torch.manual_seed(0)
    grid = (8, 8)
    n_b = round(ratio * 64)
    owner = block_owner_map(5, grid, block, n_b)
    assert owner.shape == (5, 64)
    assert (owner.sum(1) == n_b).all()
    assert ((owner == 0).sum(1) == 64 - n_b).all()


def test_blocks_are_whole_when_counts_allow():
    torch.manual_seed(1)
    owner = block_owner_map(4, (8, 8), 2, 32).view(4, 4, 2, 4, 2)   # (b, by, y, bx, x)
    per_block = owner.sum((2, 4))                                    # tokens of B in each 2x2 block
    assert ((per_block == 0) | (per_block == 4)).all()
    # a count that is not a multiple of the block area splits at most one block
    owner = block_owner_map(4, (8, 8), 2, 30).view(4, 4, 2, 4, 2).sum((2, 4))
    assert (((owner != 0) & (owner != 4)).sum((1, 2)) <= 1).all()


def test_roll_pairing_and_pixels_follow_tokens():
    torch.manual_seed(2)
    b, p = 6, 4
    out = MixViews(patch_size=p, ratio=0.5, block=2)(_batch(b))
    mixed, mix = out["views"]["mixed"], out["mix"]["mixed"]
    assert mix["shift"] == 1 and mix["source"] == "view1"
    owner = mix["owner"].view(b, 4, 4)
    src = mixed[:, 0, ::p, ::p]                                     # one pixel per token
    expect = torch.where(owner == 1, (torch.arange(b).view(b, 1, 1) - 1) % b, torch.arange(b).view(b, 1, 1))
    assert torch.equal(src, expect.float())
    # every pixel of a patch comes from one image
    assert torch.equal(mixed, mixed[:, :, ::p, ::p].repeat_interleave(p, 2).repeat_interleave(p, 3))


def test_select_a_and_b_read_the_right_images():
    torch.manual_seed(3)
    b = 4
    batch = MixViews(patch_size=4, ratio=0.5, block=1)(_batch(b))
    owner = batch["mix"]["mixed"]["owner"]
    z = owner.float().unsqueeze(-1)                                  # token value = its owner
    enc = Encoded(name="mixed", z=z, tokens=Tokens(x=z, grid=(4, 4)))
    a, bb = select(enc, "a", batch), select(enc, "b", batch)
    assert (a.z == 0).all() and (bb.z == 1).all()
    assert torch.equal(a.rows, torch.arange(b))
    assert torch.equal(bb.rows, (torch.arange(b) - 1) % b)          # input i holds image i - 1 as B
    assert a.z.shape[1] == bb.z.shape[1] == 8


def test_bad_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="ratio"):
        MixViews(patch_size=4, ratio=1.0)
    with pytest.raises(ConfigError, match="view2"):
        MixViews(patch_size=4, source="view2")(_batch())


def test_maps_come_from_the_global_torch_rng():
    # the trainer saves and restores the global RNG, so a resumed run redraws the same maps
    torch.manual_seed(7)
    a = MixViews(patch_size=4, block=2)(_batch())["mix"]["mixed"]["owner"]
    torch.manual_seed(7)
    b = MixViews(patch_size=4, block=2)(_batch())["mix"]["mixed"]["owner"]
    c = MixViews(patch_size=4, block=2)(_batch())["mix"]["mixed"]["owner"]
    assert torch.equal(a, b) and not torch.equal(b, c)


def test_select_both_pads_the_smaller_role_and_pools_only_real_tokens():
    # ratio 0.25: A keeps 12 of 16 tokens, B holds 4; 'both' stacks A rows then B rows, padding B's
    from m3i_modular.decoders.pool import pool_tokens
    torch.manual_seed(4)
    b = 4
    batch = MixViews(patch_size=4, ratio=0.25, block=1)(_batch(b))
    owner = batch["mix"]["mixed"]["owner"]
    z = (owner.float() + 1).unsqueeze(-1)                            # A tokens 1.0, B tokens 2.0
    enc = Encoded(name="mixed", z=z, tokens=Tokens(x=z, grid=(4, 4)))
    both = select(enc, "both", batch)
    assert both.z.shape == (2 * b, 12, 1)
    assert both.pad_mask is not None and torch.equal(both.pad_mask.sum(1), torch.tensor([0] * b + [8] * b))
    assert torch.equal(pool_tokens(both, "mean")[:, 0], torch.tensor([1.0] * b + [2.0] * b))
    assert torch.equal(both.rows, torch.cat([torch.arange(b), (torch.arange(b) - 1) % b]))


def test_attention_within_keeps_the_two_images_apart():
    from m3i_modular.encoders.transformer import TransformerEncoder
    torch.manual_seed(5)
    b, p = 4, 4
    out = MixViews(patch_size=p, ratio=0.5, block=2, attention="within")(_batch(b))
    mask, owner = out["attn_masks"]["mixed"], out["mix"]["mixed"]["owner"]
    assert mask.shape == (b, 1, 16, 16)
    assert torch.equal(mask[:, 0], owner[:, :, None] == owner[:, None, :])
    # an encoder under the mask: changing image B's tokens leaves image A's outputs unchanged
    enc = TransformerEncoder(layers=2, heads=2, dim=8).eval()
    x = torch.randn(b, 16, 8)
    x2 = torch.where(owner.bool().unsqueeze(-1), torch.randn(b, 16, 8), x)
    za, zb = (enc(Tokens(x=t, grid=(4, 4)), attn_mask=mask) for t in (x, x2))
    a_tok = (owner == 0).unsqueeze(-1).expand_as(za)
    assert torch.allclose(za[a_tok], zb[a_tok], atol=1e-6)
    across = enc(Tokens(x=x2, grid=(4, 4)))
    assert not torch.allclose(zb[a_tok], across[a_tok], atol=1e-3)   # without the mask B leaks into A
    with pytest.raises(ConfigError, match="attention"):
        MixViews(patch_size=4, attention="sideways")
