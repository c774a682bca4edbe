"""Paper-size text recipes built on the meta device: parameter counts from the architectures' formulas
(BERT-base ~110M, GPT-2 small 124,439,808)."""
import json
import os

import torch

from m3i_modular.recipe.model import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _count(name):
    with open(os.path.join(ROOT, "models", name)) as f:
        cfg = json.load(f)
    with torch.device("meta"):
        model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    return sum(p.numel() for p in model.parameters())


def _layer(h, f):
    return 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h


def test_bert_base_parameters():
    v, h, f, p, n = 30522, 768, 3072, 512, 12
    emb = v * h + p * h + 2 * h + 2 * h
    mlm = h * h + h + 2 * h + v          # transform + LayerNorm + output bias (decoder weight tied)
    sop = (h * 2 + 2) + (2 * 2 + 2)      # [CLS] linear + class embedding
    expected = emb + n * _layer(h, f) + mlm + sop
    assert _count("bert_base.json") == expected
    assert 108e6 < expected < 111e6


def test_gpt2_parameters():
    assert _count("gpt2.json") == 50257 * 768 + 1024 * 768 + 12 * _layer(768, 3072) + 2 * 768 == 124439808
