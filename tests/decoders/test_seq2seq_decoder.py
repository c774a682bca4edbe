"""seq2seq decoder: a converted TencentPretrain encoder-decoder config builds and trains one step; the
decoder is causal over the target, reads the encoder through cross-attention and ignores padded memory."""
import math

import torch

from m3i_modular.convert.tencentpretrain import convert_config
from m3i_modular.interfaces import Selection
from m3i_modular.recipe.model import build_model
from m3i_modular.registry import DECODERS, build

V = 50
TP_BART_TINY = {"emb_size": 32, "feedforward_size": 64, "hidden_size": 32, "hidden_act": "gelu", "heads_num": 2,
                "layers_num": 2, "decoder_layers_num": 1, "max_seq_length": 16, "dropout": 0.0,
                "data_processor": "bart", "embedding": ["word", "pos"], "tgt_embedding": ["word", "pos"],
                "encoder": "transformer", "decoder": "transformer", "mask": "fully_visible", "target": ["lm"],
                "tie_weights": True, "layernorm_positioning": "post"}


def _decoder(norm="post"):
    emb = {"word": {"type": "word", "vocab_size": V, "dim": 32, "pad_id": 0},
           "position": {"type": "position", "max_length": 16, "dim": 32}}
    dec = build(DECODERS, {"type": "seq2seq", "input_embedding": emb, "layers": 2, "heads": 2, "norm": norm},
                in_dim=24, out_dim=32)
    return dec.eval()


def test_converted_tencentpretrain_seq2seq_builds_and_runs():
    cfg = convert_config(TP_BART_TINY, vocab_size=V)
    dec_cfg = cfg["objectives"]["lm"]["decoder"]
    assert dec_cfg["type"] == "seq2seq" and dec_cfg["layers"] == 1
    torch.manual_seed(0)
    model = build_model(cfg, seed=0)
    ids = torch.randint(5, V, (3, 12))
    out = model({"text": ids})
    # small logits at initialisation: cross-entropy over V candidates is about ln V
    assert abs(float(out["lm_loss"].detach()) - math.log(V)) < 0.1
    out["loss"].backward()
    dec = model.objectives["lm"].decoder
    for p in (dec.embedding.word.weight, dec.blocks[0].cross_attn.kv.weight, model.encoder.blocks[0].attn.qkv.weight):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_decoder_is_causal_over_the_target():
    torch.manual_seed(0)
    for norm in ("post", "pre"):
        dec = _decoder(norm)
        sel = Selection(z=torch.randn(2, 7, 24), rows=torch.arange(2))
        tgt = torch.randint(5, V, (2, 10))
        changed = tgt.clone()
        changed[:, 6:] = torch.randint(5, V, (2, 4))
        a = dec(sel, target_input=tgt)
        b = dec(sel, target_input=changed)
        assert a.shape == (2, 10, 32)
        assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5)
        assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-3)


def test_decoder_reads_memory_but_not_its_padding():
    torch.manual_seed(0)
    dec = _decoder()
    z = torch.randn(2, 7, 24)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[:, 5:] = True
    tgt = torch.randint(5, V, (2, 10))
    tgt[1, 8:] = 0  # a padded target row stays finite
    base = dec(Selection(z=z, rows=torch.arange(2), pad_mask=pad), target_input=tgt)
    assert torch.isfinite(base).all()
    z_pad = z.clone()
    z_pad[:, 5:] = torch.randn(2, 2, 24)
    same = dec(Selection(z=z_pad, rows=torch.arange(2), pad_mask=pad), target_input=tgt)
    assert torch.allclose(base, same, atol=1e-5)
    z_real = z.clone()
    z_real[:, 0] += 1.0
    moved = dec(Selection(z=z_real, rows=torch.arange(2), pad_mask=pad), target_input=tgt)
    assert not torch.allclose(base, moved, atol=1e-3)
