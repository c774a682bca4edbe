import pytest
import torch

from m3i_modular.interfaces import Tokens
from m3i_modular.encoders.transformer import TransformerEncoder
from m3i_modular.layers.positions import grid_centres, sincos_2d


def _enc(**kw):
    torch.manual_seed(0)
    args = dict(layers=2, heads=2, dim=16)
    args.update(kw)
    return TransformerEncoder(**args).eval()


def test_causal_output_ignores_later_tokens():
    enc = _enc(causal=True)
    x = torch.randn(2, 6, 16)
    y = x.clone()
    y[:, 4:] = torch.randn(2, 2, 16)
    a, b = enc(Tokens(x=x)), enc(Tokens(x=y))
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)


def test_full_attention_sees_every_token():
    enc = _enc()
    x = torch.randn(2, 6, 16)
    y = x.clone()
    y[:, 5] = 10 * torch.randn(2, 16)
    assert float((enc(Tokens(x=x))[:, 0] - enc(Tokens(x=y))[:, 0]).abs().max()) > 1e-3


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_padding_does_not_leak(norm):
    enc = _enc(norm=norm)
    x = torch.randn(1, 5, 16)
    pad = torch.tensor([[False, False, False, True, True]])
    y = x.clone()
    y[:, 3:] = torch.randn(1, 2, 16)
    a = enc(Tokens(x=x, pad_mask=pad))
    b = enc(Tokens(x=y, pad_mask=pad))
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)


def test_keep_equals_encoding_the_kept_tokens():
    enc = _enc()
    x = torch.randn(3, 8, 16)
    keep = torch.tensor([[0, 2, 5], [1, 3, 7], [4, 5, 6]])
    gathered = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, 16))
    assert torch.allclose(enc(Tokens(x=x), keep=keep), enc(Tokens(x=gathered)), atol=1e-6)


def test_activation_checkpointing_gives_the_same_values_and_gradients():
    x = torch.randn(2, 6, 16)
    grads = []
    for ckpt in (False, True):
        enc = _enc(checkpointing=ckpt, drop_path=0.0).train()
        out = enc(Tokens(x=x))
        out.square().sum().backward()
        grads.append((out.detach(), enc.blocks[0].attn.qkv.weight.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


def test_drop_path_is_identity_in_eval_and_stochastic_in_train():
    enc = _enc(drop_path=0.5)
    x = torch.randn(4, 6, 16)
    assert torch.equal(enc(Tokens(x=x)), enc(Tokens(x=x)))
    enc.train()
    torch.manual_seed(1)
    a = enc(Tokens(x=x))
    torch.manual_seed(2)
    b = enc(Tokens(x=x))
    assert not torch.allclose(a, b)


def test_sincos_2d_is_the_standard_table():
    """2-D sin-cos on integer patch coordinates: half the channels encode y, half x (MAE's table)."""
    grid = (2, 3)
    units = grid_centres(*grid) * torch.tensor([3.0, 2.0]) - 0.5
    table = sincos_2d(units, 8)
    # row-major: token 4 is (x=1, y=1); channel 0 is sin(y * 1), channel 4 is sin(x * 1)
    assert torch.allclose(units[4], torch.tensor([1.0, 1.0]))
    assert torch.isclose(table[4, 0], torch.sin(torch.tensor(1.0)))
    assert torch.isclose(table[5, 4], torch.sin(torch.tensor(2.0)))
    assert torch.isclose(table[5, 2], torch.cos(torch.tensor(1.0)))
