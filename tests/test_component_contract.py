"""The component contract (m3i_modular/interfaces.py): build-time checks against the family Protocols, build
arguments passed only as declared, run-time needs, and borrowed modules held outside the module tree."""
import copy
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from m3i_modular.errors import ConfigError
from m3i_modular.interfaces import (Borrowed, Decoder, Embedding, Encoded, Selection, Tokens, conforms,
                                    contract_problems)
from m3i_modular.recipe.model import build_model
from m3i_modular.registry import Registry, build
from m3i_modular.selectors.selection import gather_needs, select

TINY = {"embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
        "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 32},
        "objectives": {"cls": {"input": "view1", "target_view": "label",
                               "target_embedding": {"type": "category", "num_classes": 10},
                               "decoder": {"type": "pool"}, "target": {"type": "boltzmann"}}}}


class GoodDecoder(nn.Module):
    needs = ("query", "batch:weight")

    def __init__(self, *, in_dim: int, out_dim: int):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, sel, query, *, weight=None):
        return sel.z.mean(1)


class NoForward(nn.Module):
    def __init__(self, *, in_dim: int, out_dim: int):
        super().__init__()


class UnknownNeed(GoodDecoder):
    needs = ("labels",)


class NeedNotTaken(GoodDecoder):
    needs = ("target_input",)


class NoDim(nn.Module):
    def forward(self, inputs, tokens=None):
        return Tokens(x=inputs)


@pytest.mark.parametrize("obj,protocol,problem", [
    (GoodDecoder(in_dim=2, out_dim=3), Decoder, None),
    (NoForward(in_dim=2, out_dim=3), Decoder, "it defines no forward()"),
    (UnknownNeed(in_dim=2, out_dim=3), Decoder, "unknown need 'labels'"),
    (NeedNotTaken(in_dim=2, out_dim=3), Decoder, "forward() takes no 'target_input' (a declared need)"),
    (NoDim(), Embedding, "it has no attribute 'dim'"),
    (lambda sel: sel.z, Decoder, "it is not a torch.nn.Module"),
])
def test_contract_problems_name_what_is_missing(obj, protocol, problem):
    problems = contract_problems(obj, protocol)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_build_passes_offered_arguments_only_to_constructors_that_name_them():
    reg = Registry("decoder")

    class Takes(GoodDecoder):
        pass

    class Skips(nn.Module):
        def __init__(self, *, in_dim: int, out_dim: int, scale: float = 1.0):
            super().__init__()

        def forward(self, sel):
            return sel.z

    reg.register("takes")(Takes)
    reg.register("skips")(Skips)
    assert build(reg, {"type": "takes"}, in_dim=4, out_dim=5).out_dim == 5
    build(reg, {"type": "skips"}, offer={"encoder_dim": 7}, in_dim=4, out_dim=5)  # not named: not passed
    with pytest.raises(ConfigError, match=r"'out_dim' of decoder 'skips' is not a recipe key"):
        build(reg, {"type": "skips", "out_dim": 3}, in_dim=4, out_dim=5)
    reg.register("no_forward")(NoForward)
    with pytest.raises(ConfigError, match=r"does not satisfy the decoder contract.*no forward\(\)"):
        build(reg, {"type": "no_forward"}, in_dim=4, out_dim=5, contract=conforms(Decoder))


def test_unknown_select_fails_at_build_with_its_path():
    cfg = copy.deepcopy(TINY)
    cfg["objectives"]["cls"]["select"] = "bothh"
    with pytest.raises(ConfigError, match=r"model\.objectives\.cls\.select: unknown select 'bothh'.*'both'"):
        build_model(cfg)


def test_online_tower_width_comes_from_the_encoder_as_a_build_argument():
    cfg = copy.deepcopy(TINY)
    cfg["encoder"]["dim"] = cfg["embedding"]["dim"] = 48
    cfg["objectives"]["cls"].update(target_view="view2", target_embedding={"type": "online"},
                                    target={"type": "infonce"})
    model = build_model(cfg)
    assert model.objectives["cls"].target_embedding.dim == 48


def test_borrowed_modules_are_not_submodules():
    class User(nn.Module):
        def __init__(self):
            super().__init__()
            self.own = nn.Linear(2, 2)
            self.other = Borrowed("the other layer")

    user, other = User(), nn.Linear(3, 3)
    with pytest.raises(RuntimeError, match="the other layer is used before bind"):
        user.other.get()
    user.other.set(other)
    assert user.other.get() is other
    assert list(user.state_dict()) == ["own.weight", "own.bias"]
    assert all(m is not other for m in user.modules())


def test_shared_target_is_borrowed_by_the_objective_and_saved_once():
    cfg = {**copy.deepcopy(TINY)}
    cfg["objectives"]["cls"]["target_embedding"] = "@cat"
    model = build_model(cfg, {"cat": {"type": "category", "num_classes": 10}})
    assert model.objectives["cls"].target_embedding is model.shared["cat"]
    keys = list(model.state_dict())
    assert "shared.cat.weight" in keys and not any(k.startswith("objectives.cls.target_embedding") for k in keys)


def test_embedding_gets_only_the_batch_fields_its_parts_declare():
    cfg = {"embedding": {"word": {"type": "word", "vocab_size": 20, "dim": 16},
                         "segment": {"type": "segment", "dim": 16}},
           "encoder": {"type": "transformer", "layers": 1, "heads": 2, "dim": 16},
           "objectives": {"lm": {"input": "text", "target_view": "text",
                                 "target_embedding": {"type": "tied_word", "word": "@embedding.word",
                                                      "mode": "next"},
                                 "decoder": {"type": "mlm_head"}, "target": {"type": "boltzmann"}}}}
    model = build_model(cfg)
    assert model.embedding.needs == ("batch:segments",)
    ids = torch.randint(1, 20, (2, 5))
    z0 = model.encode({"text": ids}, "text").z
    z1 = model.encode({"text": ids, "segments": torch.ones_like(ids)}, "text").z
    assert torch.allclose(z0, model.encode({"text": ids, "segments": torch.zeros_like(ids)}, "text").z)
    assert not torch.allclose(z0, z1)


def test_batch_field_needs_arrive_at_the_selected_rows():
    b = 4
    z = torch.randn(b, 3, 8)
    enc = Encoded(name="x", z=z, tokens=Tokens(x=z))
    sel = select(enc, "all", {})
    sel = Selection(z=sel.z.flip(0), rows=sel.rows.flip(0))       # rows 3, 2, 1, 0
    batch = {"weight": torch.arange(b).float(), "note": "kept as is"}
    got = gather_needs(("batch:weight", "batch:note", "batch:absent"), batch, sel, target_view="label",
                       target_grid=None, batch_size=b)
    assert torch.equal(got["weight"], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert got["note"] == "kept as is" and got["absent"] is None


def test_no_module_hides_references_in_its_dict():
    pkg = Path(__file__).resolve().parents[1] / "m3i_modular"
    hits = [f"{p.relative_to(pkg)}:{i}" for p in pkg.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"__dict__\[", line)]
    assert hits == [], "hold borrowed modules in interfaces.Borrowed: " + ", ".join(hits)
