"""data2vec's target: the momentum tower's feature "top_k" averages the last K blocks, each
instance-normalised over its tokens."""
import pytest
import torch
import torch.nn.functional as F

from m3i_modular.errors import ConfigError
from m3i_modular.recipe.model import build_model
from m3i_modular.target_embeddings.momentum import instance_norm_tokens, top_k_average

MODEL = {
    "mask_mode": "replace",
    "embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
    "encoder": {"type": "transformer", "layers": 3, "heads": 2, "dim": 32},
    "objectives": {
        "d2v": {"input": "view1", "target_view": "view1", "loss_on": "masked", "target_embedding": "@ema",
                "decoder": {"type": "token_head", "head": "linear"},
                "target": {"type": "gaussian", "loss": "smooth_l1", "beta": 2.0}}},
}


def _shared(**kw):
    cfg = {"type": "momentum", "of": ["embedding", "encoder"], "feature": "top_k", "top_k": 2, "norm": "none"}
    cfg.update(kw)
    return {"ema": cfg}


def test_instance_norm_matches_torch_instance_norm_on_channels_first():
    x = torch.randn(3, 7, 5) * 4 + 2
    want = F.instance_norm(x.transpose(1, 2), eps=1e-5).transpose(1, 2)
    torch.testing.assert_close(instance_norm_tokens(x), want)
    out = instance_norm_tokens(x)
    torch.testing.assert_close(out.mean(1), torch.zeros(3, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(1, unbiased=False), torch.ones(3, 5), atol=1e-3, rtol=0)


def test_top_k_average_ignores_scale_and_early_blocks():
    a, b = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    early = torch.randn(2, 6, 4)
    # scaling or shifting one block's output changes nothing: each block is normalised before the average
    got = top_k_average([early, a, b * 100.0 + 3.0], 2)
    want = (instance_norm_tokens(a) + instance_norm_tokens(b)) / 2
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(top_k_average([early, a, b], 1), instance_norm_tokens(b))


def test_tower_target_is_average_of_teacher_blocks():
    m = build_model(MODEL, _shared(), seed=0)
    ema = m.shared["ema"]
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = ema({"views": {"view1": images}}, view="view1")
    with torch.no_grad():  # recompute from the online tower: at step 0 the copy equals it
        m.eval()
        _, hidden = m.encoder(m.embedding(images), return_layers=True)
    want = sum(F.instance_norm(h.transpose(1, 2), eps=1e-5).transpose(1, 2) for h in hidden[-2:]) / 2
    assert out.value.shape == (2, 16, 32) and out.grid == (4, 4)
    torch.testing.assert_close(out.value, want, atol=1e-5, rtol=1e-5)
    # the full model trains on it: a finite smooth-L1 loss over the masked tokens only
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :6] = True
    m.train()
    loss = m({"views": {"view1": images}, "masks": {"view1": mask}})
    assert torch.isfinite(loss["loss"]) and loss["d2v_count"].item() == 12


@pytest.mark.parametrize("kw, msg", [({"top_k": 4}, "has 3 blocks"), ({"top_k": 0}, "top_k"),
                                     ({"feature": "last_block"}, "top_k")])
def test_bad_top_k_is_one_config_error(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        build_model(MODEL, _shared(**kw), seed=0)
