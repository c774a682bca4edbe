import pytest
import torch

from m3i_modular.errors import ConfigError
from m3i_modular.recipe.model import build_model

TEXT = {"type": "text_tower", "dim": 8,
        "embedding": {"word": {"type": "word", "vocab_size": 12, "dim": 16},
                      "position": {"type": "position", "max_length": 6, "dim": 16}},
        "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 16}}


def _model(target_embedding, target, decoder=None):
    cfg = {"embedding": {"type": "patch", "image_size": 8, "patch_size": 4, "dim": 16},
           "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 16},
           "objectives": {"o": {"input": "view1", "target_view": "view2", "target_embedding": target_embedding,
                                "decoder": decoder or {"type": "pool", "head": "linear"}, "target": target}}}
    return build_model(cfg, {}, seed=0)


def _batch(b=4):
    g = torch.Generator().manual_seed(0)
    return {"views": {"view1": torch.randn(b, 3, 8, 8, generator=g), "view2": torch.randn(b, 3, 8, 8, generator=g)}}


@pytest.mark.parametrize("kind,grad_through_target", [("online", True), ("stopgrad", False)])
def test_online_has_gradient_and_stopgrad_has_none(kind, grad_through_target):
    m = _model({"type": kind}, {"type": "gaussian", "loss": "cosine"})
    batch = _batch()
    te = m.objectives["o"].target_embedding
    out = te(batch, view="view2")
    assert out.value.shape == (4, 16) and out.value.requires_grad == grad_through_target
    # the online tower is the model's own encoder: same features, nothing copied into the state_dict
    assert torch.allclose(out.value, m.encoder(m.embedding(batch["views"]["view2"])).mean(1))
    assert not any("target_embedding" in k for k in m.state_dict())


def test_text_tower_eos_pool_absent_captions_and_nested_key_paths():
    m = _model(TEXT, {"type": "infonce"})
    tower = m.objectives["o"].target_embedding
    ids = torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    present = torch.tensor([True, True, False])
    out = tower({"text": ids, "present": {"text": present}}, view="text")
    assert torch.isfinite(out.candidates).all() and torch.equal(out.candidate_valid, present)
    # causal + EOS pooling: the padding after EOS cannot change a caption's embedding
    short = tower({"text": ids[:, :4], "present": {"text": present}}, view="text")
    assert torch.allclose(short.candidates[:2], out.candidates[:2], atol=1e-6)
    # ... but the tokens before it do
    ids2 = ids.clone()
    ids2[0, 1] = 9
    moved = tower({"text": ids2, "present": {"text": present}}, view="text")
    assert not torch.allclose(moved.candidates[0], out.candidates[0])
    assert torch.allclose(moved.candidates[1], out.candidates[1], atol=1e-6)
    bad = dict(TEXT, encoder=dict(TEXT["encoder"], layerz=2))
    with pytest.raises(ConfigError, match=r"model\.objectives\.o\.target_embedding\.encoder\.layerz"):
        _model(bad, {"type": "infonce"})


def test_attention_pool_is_order_free_and_ignores_padding():
    from m3i_modular.decoders.attention_pool import AttentionPoolDecoder
    from m3i_modular.interfaces import Selection
    torch.manual_seed(0)
    dec = AttentionPoolDecoder(in_dim=16, out_dim=8, heads=2).eval()
    z = torch.randn(3, 5, 16)
    rows = torch.arange(3)
    a = dec(Selection(z=z, rows=rows))
    b = dec(Selection(z=z[:, torch.randperm(5)], rows=rows))
    assert torch.allclose(a, b, atol=1e-5)
    pad = torch.tensor([[False] * 4 + [True]] * 3)
    z2 = z.clone()
    z2[:, 4] = 100.0
    c = dec(Selection(z=z, rows=rows, pad_mask=pad))
    d = dec(Selection(z=z2, rows=rows, pad_mask=pad))
    assert torch.allclose(c, d, atol=1e-5) and not torch.allclose(a, c)
