"""The small hooks the converters need outside convert/: the MLP activation knob (exact / tanh GELU,
QuickGELU) on the transformer encoder, and a text tower that pools its first token."""
import math

import torch
import torch.nn.functional as F

from m3i_modular.interfaces import Tokens
from m3i_modular.encoders.transformer import TransformerEncoder
from m3i_modular.registry import TARGET_EMBEDDINGS, build


def test_encoder_act_knob_reaches_every_mlp():
    x = torch.randn(5, 7)
    gelu_fast = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    for act, want in (("gelu", F.gelu(x)), ("gelu_tanh", gelu_fast), ("quick_gelu", x * torch.sigmoid(1.702 * x))):
        enc = TransformerEncoder(layers=2, heads=2, dim=8, act=act)
        for blk in enc.blocks:
            torch.testing.assert_close(blk.mlp.act(x), want, atol=1e-6, rtol=1e-6)
    assert isinstance(TransformerEncoder(layers=1, heads=2, dim=8).blocks[0].mlp.act, torch.nn.GELU)


def test_text_tower_first_token_pool():
    cfg = {"type": "text_tower", "dim": 8, "pool": "first",
           "embedding": {"word": {"type": "word", "vocab_size": 20, "dim": 16}},
           "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 16, "causal": False}}
    tower = build(TARGET_EMBEDDINGS, cfg).eval()
    ids = torch.randint(1, 20, (3, 6))
    out = tower({"text": ids}).candidates
    z = tower.encoder(tower.embedding(ids))
    torch.testing.assert_close(out, tower.proj(z[:, 0]))
    assert isinstance(tower.embedding(ids), Tokens)
