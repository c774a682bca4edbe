"""projector_predictor composes pool -> projector -> predictor; a tied decoder reuses another objective's
decoder (same outputs, same parameters, gradient from both objectives)."""
import pytest
import torch

from m3i_modular.errors import ConfigError
from m3i_modular.interfaces import Selection
from m3i_modular.recipe.model import build_model

EMB = {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32, "pos": "sincos"}
ENC = {"type": "transformer", "layers": 1, "heads": 2, "dim": 32}


def _model():
    dec = {"type": "projector_predictor", "projector_hidden": 24, "predictor_hidden": 24}
    objectives = {
        "a": {"input": "view1", "target_view": "view2", "target_embedding": "@ema", "decoder": dec,
              "target": {"type": "gaussian", "loss": "cosine"}},
        "b": {"input": "view2", "target_view": "view1", "target_embedding": "@ema",
              "decoder": {"type": "tied", "to": "objectives.a.decoder"},
              "target": {"type": "gaussian", "loss": "cosine"}}}
    shared = {"ema": {"type": "momentum", "of": ["embedding", "encoder", "objectives.a.decoder.projector"],
                      "feature": "output", "norm": "none", "pool": "mean", "dim": 16}}
    return build_model({"embedding": EMB, "encoder": ENC, "objectives": objectives}, shared, seed=0)


def test_projector_predictor_is_predictor_of_projector_of_mean():
    model = _model().eval()
    dec = model.objectives["a"].decoder
    z = torch.randn(5, 7, 32)
    sel = Selection(z=z, rows=torch.arange(5))
    want = dec.predictor(dec.projector.head(z.mean(1)))
    assert torch.allclose(dec(sel), want, atol=1e-6)
    assert dec(sel).shape == (5, 16)


def test_tied_decoder_owns_no_parameters_and_matches_its_target():
    model = _model().train()
    keys = list(model.state_dict())
    assert not any(k.startswith("objectives.b.decoder") for k in keys)
    assert any(k.startswith("objectives.a.decoder.predictor") for k in keys)
    sel = Selection(z=torch.randn(6, 4, 32), rows=torch.arange(6))
    assert torch.equal(model.objectives["b"].decoder(sel), model.objectives["a"].decoder(sel))


def test_tied_decoder_gets_gradient_from_both_objectives():
    model = _model().train()
    g = torch.Generator().manual_seed(1)
    batch = {"views": {"view1": torch.randn(6, 3, 16, 16, generator=g),
                       "view2": torch.randn(6, 3, 16, 16, generator=g)}}
    w = model.objectives["a"].decoder.predictor[0].weight
    grads = []
    for name in ("a_loss", "b_loss"):
        model.zero_grad()
        model(batch)[name].backward()
        grads.append(w.grad.clone())
    model.zero_grad()
    model(batch)["loss"].backward()
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert torch.allclose(w.grad, grads[0] + grads[1], atol=1e-6)


def test_momentum_copies_the_projector_as_the_target_head():
    model = _model()
    ema = model.shared["ema"]
    assert len(ema.copies) == 3
    online = model.objectives["a"].decoder.projector.state_dict()
    for k, v in ema.copies[2].state_dict().items():
        assert torch.equal(v, online[k]), k


def test_tied_decoder_must_point_at_an_objective_decoder():
    with pytest.raises(ConfigError, match="objectives.NAME.decoder"):
        from m3i_modular.decoders.projector_predictor import TiedDecoder
        TiedDecoder(in_dim=8, out_dim=8, to="encoder")
