"""Speech embedding, stacked-frame targets and mask_mode "replace" on 1-D tokens."""
import torch

from m3i_modular.embeddings.speech import SpeechEmbedding
from m3i_modular.recipe.model import build_model
from m3i_modular.registry import build_context
from m3i_modular.target_embeddings.frames import StackedFrames, stack_frames


def _embedding(**kw):
    with build_context(seed=0):
        return SpeechEmbedding(n_mels=16, dim=32, channels=8, layers=2, **kw)


def test_token_count_and_locality():
    emb = _embedding(pos="none")
    x = torch.randn(2, 64, 16)
    tok = emb(x)
    assert tok.x.shape == (2, 16, 32) and tok.grid is None and emb.frames_per_token == 4
    y = x.clone()
    y[:, 40:] = torch.randn(2, 24, 16)  # frames of tokens 10.. (and the edge of token 9's receptive field)
    changed = (emb(y).x - tok.x).abs().amax(dim=(0, 2)) > 0
    assert not bool(changed[:9].any()) and bool(changed[10:].all())


def test_sincos_positions_are_the_pos_part():
    emb = _embedding(pos="sincos")
    x = torch.randn(2, 32, 16)
    tok = emb(x)
    bare = emb.proj(emb.conv(x.unsqueeze(1)).permute(0, 2, 1, 3).flatten(2))
    assert torch.allclose(tok.x - tok.pos, bare, atol=1e-6)


def test_stacked_frames_rows_are_the_subsampled_frames():
    feats = torch.randn(3, 20, 5)
    t = stack_frames(feats, 4)
    assert t.shape == (3, 5, 20)
    assert torch.equal(t[1, 2].reshape(4, 5), feats[1, 8:12])
    te = StackedFrames(frames_per_token=4, n_mels=5, normalize=True)
    out = te({"views": {"a": feats}}, view="a")
    assert torch.allclose(out.value.mean(-1), torch.zeros(3, 5), atol=1e-5)
    assert te.dim == 20 and bool(out.valid.all())


MODEL = {
    "embedding": {"type": "speech", "n_mels": 16, "dim": 32, "channels": 8, "layers": 2, "max_tokens": 32},
    "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 32},
    "mask_mode": "replace",
    "objectives": {"mf": {"input": "audio", "target_view": "audio", "loss_on": "masked",
                          "target_embedding": {"type": "stacked_frames", "frames_per_token": 4, "n_mels": 16},
                          "decoder": {"type": "token_head"},
                          "target": {"type": "gaussian", "loss": "mse", "collapse_metrics": False}}},
}


def _batch(b=2, t=32):
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(b, t // 4, dtype=torch.bool)
    mask[:, 1::3] = True
    return {"views": {"audio": torch.randn(b, t, 16, generator=g)}, "masks": {"audio": mask}}


def test_replace_mode_keeps_positions_and_losses_only_masked_tokens():
    model = build_model(MODEL, seed=0)
    batch = _batch()
    seen = {}
    model.encoder.register_forward_pre_hook(lambda m, args: seen.setdefault("tokens", args[0]))
    out = model(batch)
    tokens, mask = seen["tokens"], batch["masks"]["audio"]
    clean = model.embedding(batch["views"]["audio"])
    expect = model.mask_token[0, 0] + clean.pos[0]                    # (N, D): mask token + its position
    assert torch.allclose(tokens.x[mask], expect.expand(2, -1, -1)[mask], atol=1e-6)
    assert torch.equal(tokens.x[~mask], clean.x[~mask])
    assert float(out["mf_count"]) == float(mask.sum())                # loss_on masked: masked tokens only
    # the loss is the mean over masked tokens of the per-token MSE
    enc = model.encode(batch, "audio")
    pred = model.objectives["mf"].decoder(type("S", (), {"z": enc.z, "prefix": 0})())
    tgt = model.objectives["mf"].target_embedding(batch, view="audio").value
    per = (pred - tgt).pow(2).mean(-1)
    assert torch.allclose(out["mf_loss"], per[mask].mean(), atol=1e-5)
