"""Hugging Face <-> ours: an image tower exports to a ViT directory that transformers' ViTModel loads with
identical features (scripts/export.py --format hf_vit); a HF ViT or BERT directory enters through
--init-from with identical features and a loaded / skipped / new report (random-init models, no download)."""
import os

import pytest
import torch

from cli_utils import load_script
from convert_utils import perturb
from m3i_modular.training import checkpoint as ckpt
from m3i_modular.cli import init_from
from m3i_modular.convert.bert_recipe import bert_model_config
from m3i_modular.convert.hf_vit import model_section, to_hf_vit
from m3i_modular.convert.pretrained import detect_format
from m3i_modular.errors import ConfigError
from m3i_modular.recipe.model import build_model

transformers = pytest.importorskip("transformers")

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=16,
           patch_size=4, hidden_act="gelu")


@pytest.mark.parametrize("act, pos", [("gelu", "learned"), ("gelu_tanh", "sincos")])
def test_ours_export_loads_in_transformers_with_identical_features(tmp_path, act, pos):
    section = {"embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32, "pos": pos,
                             "cls_token": True},
               "encoder": {"type": "transformer", "layers": 2, "heads": 4, "dim": 32, "norm": "pre", "act": act},
               "objectives": {"cls": {"input": "view1", "target_view": "label",
                                      "target_embedding": {"type": "category", "num_classes": 3},
                                      "decoder": {"type": "pool", "pool": "cls", "head": "linear"},
                                      "target": {"type": "boltzmann"}}}}
    model = perturb(build_model(section, seed=0)).eval()
    root = str(tmp_path / "ckpt")
    ckpt.save_checkpoint(root, 0, {"model": model.state_dict()}, config={"model": section},
                         meta=ckpt.run_metadata(1, "fp32"))
    out = str(tmp_path / "hf")
    assert load_script("scripts/export.py").main(["--checkpoint", root, "--format", "hf_vit", "--output", out]) == 0
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    hf = transformers.ViTModel.from_pretrained(out, add_pooling_layer=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=X).last_hidden_state, model.forward_features(X),
                                   atol=1e-5, rtol=1e-5)
    assert detect_format(out) == "hf_vit"
    with pytest.raises(ConfigError, match="already exists"):
        to_hf_vit(model, out)


def test_cls_less_tower_is_refused_in_one_line(tmp_path):
    section = {"embedding": {"type": "patch", "image_size": 16, "patch_size": 4, "dim": 32},
               "encoder": {"type": "transformer", "layers": 1, "heads": 4, "dim": 32},
               "objectives": {"c": {"input": "view1", "target_view": "label",
                                    "target_embedding": {"type": "category", "num_classes": 3},
                                    "decoder": {"type": "pool"}, "target": {"type": "boltzmann"}}}}
    with pytest.raises(ConfigError, match="CLS token") as e:
        to_hf_vit(build_model(section, seed=0), str(tmp_path / "hf"))
    assert "\n" not in str(e.value) and not (tmp_path / "hf").exists()


@pytest.mark.parametrize("head", [False, True])
def test_hf_vit_directory_to_ours_identical_features(tmp_path, head):
    cfg = transformers.ViTConfig(**dict(VIT, hidden_act="gelu_pytorch_tanh"), num_labels=3)
    hf = perturb(transformers.ViTForImageClassification(cfg) if head
                 else transformers.ViTModel(cfg, add_pooling_layer=True)).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = build_model(model_section(cfg.to_dict()), seed=0)
    report = init_from(ours, str(tmp_path / "hf"))
    left = ["hf_vit:classifier.bias", "hf_vit:classifier.weight"] if head else \
        ["hf_vit:pooler.dense.bias", "hf_vit:pooler.dense.weight"]
    assert report["skipped"] == left
    assert report["new"] == ["objectives.category.target_embedding.bias", "objectives.category.target_embedding.weight"]
    vit = hf.vit if head else hf
    with torch.no_grad():
        torch.testing.assert_close(ours.eval().forward_features(X), vit(pixel_values=X).last_hidden_state,
                                   atol=1e-5, rtol=1e-5)


def test_hf_bert_directory_through_init_from(tmp_path):
    cfg = transformers.BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=48, max_position_embeddings=24, type_vocab_size=2)
    hf = perturb(transformers.BertModel(cfg)).eval()
    hf.save_pretrained(tmp_path / "bert")
    assert detect_format(str(tmp_path / "bert")) == "hf_bert"
    ours = build_model(bert_model_config(vocab_size=30, dim=32, layers=2, heads=4, ffn=48, max_length=24,
                                         type_vocab=2, dropout=0.0), seed=0).eval()
    report = init_from(ours, str(tmp_path / "bert"))
    assert report["skipped"] == ["hf_bert:pooler.dense.bias", "hf_bert:pooler.dense.weight"]
    assert all(k.startswith("objectives.") for k in report["new"])  # the MLM / SOP heads: BertModel has none
    ids = torch.randint(1, 30, (2, 10), generator=torch.Generator().manual_seed(2))
    seg = torch.zeros_like(ids)
    seg[:, 5:] = 1
    with torch.no_grad():
        theirs = hf(input_ids=ids, token_type_ids=seg).last_hidden_state
        torch.testing.assert_close(ours.encoder(ours.embedding(ids, segments=seg)), theirs, atol=1e-5, rtol=1e-5)
