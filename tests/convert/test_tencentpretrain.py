"""TencentPretrain -> ours, per family of its models/ folder: the config converts (or is refused in one line
naming what is missing), and a checkpoint in TencentPretrain's layout converts so that our model computes
the same outputs as a reference implementation of that layout (tp_reference.TPModel)."""
import json
import os
import sys

import pytest
import torch

from m3i_modular.training import checkpoint as ckpt
from m3i_modular.convert.tencentpretrain import convert_config
from m3i_modular.errors import ConfigError
from m3i_modular.interfaces import Selection
from m3i_modular.recipe.model import build_model

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts")]
from convert_tencentpretrain import main as convert_main  # noqa: E402
from tp_reference import TPModel  # noqa: E402

V = 40
# tiny copies of TencentPretrain's models/*/..._config.json: the same keys, small sizes
BERT = {"emb_size": 32, "feedforward_size": 64, "hidden_size": 32, "hidden_act": "gelu", "heads_num": 4,
        "layers_num": 2, "max_seq_length": 16, "dropout": 0.1, "data_processor": "bert",
        "embedding": ["word", "pos", "seg"], "encoder": "transformer", "mask": "fully_visible",
        "target": ["mlm", "sp"], "tie_weights": True}
GPT2 = {"emb_size": 32, "feedforward_size": 128, "hidden_size": 32, "hidden_act": "gelu_fast", "heads_num": 4,
        "layers_num": 2, "max_seq_length": 16, "dropout": 0.1, "data_processor": "lm",
        "embedding": ["word", "pos"], "remove_embedding_layernorm": True, "encoder": "transformer",
        "mask": "causal", "layernorm_positioning": "pre", "target": ["lm"], "tie_weights": True}
VIT = {"emb_size": 32, "feedforward_size": 64, "hidden_size": 32, "hidden_act": "gelu", "heads_num": 4,
       "layers_num": 2, "dropout": 0.1, "max_seq_length": 17, "data_processor": "vit",
       "embedding": ["patch", "pos"], "remove_embedding_layernorm": True, "encoder": "transformer",
       "mask": "fully_visible", "layernorm_positioning": "pre", "target": ["cls"], "image_height": 16,
       "image_width": 16, "patch_size": 4, "labels_num": 5}
CLIP = {"stream_0": {"emb_size": 32, "feedforward_size": 64, "hidden_size": 32, "hidden_act": "gelu",
                     "heads_num": 4, "layers_num": 2, "max_seq_length": 12, "embedding": ["word", "pos"],
                     "encoder": "transformer", "mask": "fully_visible", "remove_embedding_layernorm": False,
                     "layernorm_positioning": "post", "pooling": "first"},
        "stream_1": {"emb_size": 48, "feedforward_size": 96, "hidden_size": 48, "hidden_act": "gelu_fast",
                     "heads_num": 4, "layers_num": 2, "max_seq_length": 5, "embedding": ["patch", "pos"],
                     "encoder": "transformer", "mask": "fully_visible", "remove_embedding_layernorm": True,
                     "layernorm_positioning": "pre", "pooling": "first"},
        "data_processor": "clip", "embedding": ["dual"], "encoder": "dual", "target": ["clr"],
        "image_height": 16, "image_width": 16, "patch_size": 8, "feature_size": 24, "projection": True,
        "tie_weights": False, "dropout": 0.0}
BART = {"emb_size": 32, "feedforward_size": 64, "hidden_size": 32, "hidden_act": "gelu", "heads_num": 4,
        "layers_num": 2, "decoder_layers_num": 2, "max_seq_length": 16, "dropout": 0.1, "data_processor": "bart",
        "embedding": ["word", "pos"], "tgt_embedding": ["word", "pos"], "share_embedding": True,
        "encoder": "transformer", "mask": "fully_visible", "decoder": "transformer", "target": ["lm"],
        "tie_weights": True, "has_lmtarget_bias": True}


def _convert(tmp_path, cfg, capsys=None):
    (tmp_path / "tp.json").write_text(json.dumps(cfg))
    tp = TPModel(cfg, V).perturb().eval()
    torch.save(tp.state_dict(), tmp_path / "tp.bin")
    args = ["--config", str(tmp_path / "tp.json"), "--vocab-size", str(V), "--output", str(tmp_path / "r.json"),
            "--checkpoint", str(tmp_path / "tp.bin"), "--output-checkpoint", str(tmp_path / "ours")]
    assert convert_main(args) == 0
    recipe = json.loads((tmp_path / "r.json").read_text())
    ours = build_model(recipe["model"], seed=1).eval()
    ours.load_state_dict(ckpt.load_tensors(ckpt.resolve_checkpoint(str(tmp_path / "ours")), "model"))
    return tp, ours


def _close(a, b):
    torch.testing.assert_close(a, b, atol=2e-4, rtol=2e-4)


def _text(b=3, n=12, pad=0):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, V, (b, n), generator=g)
    if pad:
        ids[0, -pad:] = 0
    return ids


@torch.no_grad()
def test_bert(tmp_path, capsys):
    tp, ours = _convert(tmp_path, BERT)
    assert "left in the TencentPretrain checkpoint 0 []; not in it (initialised) 0 []" in capsys.readouterr().err
    ids = _text(pad=3)
    seg = torch.ones_like(ids)
    seg[:, 6:] = 2
    seg[ids == 0] = 0
    h_tp = tp.encode(ids, seg)
    h = ours.encoder(ours.embedding(ids, segments=(seg - 1).clamp(min=0)))
    keep = ids != 0
    _close(h[keep], h_tp[keep])
    sel = Selection(z=h, rows=torch.arange(3))
    mlm, t = ours.objectives["mlm"], tp.target.mlm
    logits = mlm.decoder(sel) @ mlm.target_embedding.word.weight.T + mlm.target_embedding.bias
    _close(logits[keep], t.linear_2(t.layer_norm(torch.nn.functional.gelu(t.linear_1(h_tp))))[keep])
    sop, t = ours.objectives["sop"], tp.target.sp
    te = sop.target_embedding
    _close(sop.decoder(sel) @ te.weight.T + te.bias, t.linear_2(torch.tanh(t.linear_1(h_tp[:, 0]))))


@torch.no_grad()
def test_gpt2_gelu_fast(tmp_path):
    tp, ours = _convert(tmp_path, GPT2)
    assert ours.encoder.blocks[0].mlp.act.approximate == "tanh"
    ids = _text()
    h_tp = tp.encode(ids, torch.ones_like(ids))
    h = ours.encoder(ours.embedding(ids))
    _close(h, h_tp)
    lm = ours.objectives["lm"]
    _close(lm.decoder(Selection(z=h, rows=torch.arange(3))) @ lm.target_embedding.word.weight.T,
           tp.target.lm.output_layer(h_tp))


def test_gpt2_sizes_match_tencentpretrain():
    """models/gpt2/config.json -> GPT-2 small's 124,439,808 parameters (word embedding tied, no LM bias)."""
    full = dict(GPT2, emb_size=768, hidden_size=768, feedforward_size=3072, heads_num=12, layers_num=12,
                max_seq_length=1024)
    with torch.device("meta"):
        model = build_model(convert_config(full, vocab_size=50257), seed=0)
    assert sum(p.numel() for p in model.parameters()) == 124_439_808


@torch.no_grad()
def test_vit(tmp_path):
    tp, ours = _convert(tmp_path, VIT)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    h_tp = tp.encode(x, torch.ones(2, 17, dtype=torch.long))
    h = ours.forward_features(x)
    _close(h, h_tp)
    cls, t = ours.objectives["cls"], tp.target.cls
    te = cls.target_embedding
    _close(cls.decoder(Selection(z=h, rows=torch.arange(2), prefix=1)) @ te.weight.T + te.bias,
           t.linear_2(torch.tanh(t.linear_1(h_tp[:, 0]))))


@torch.no_grad()
def test_clip_two_streams(tmp_path):
    tp, ours = _convert(tmp_path, CLIP)
    clip = ours.objectives["clip"]
    assert clip.target_embedding.encoder.blocks[0].mlp.act.approximate == "none"  # stream_0: gelu
    assert ours.encoder.blocks[0].mlp.act.approximate == "tanh"                   # stream_1: gelu_fast
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    ids = _text(n=10, pad=4)
    img_tp, txt_tp = tp.clip_features(x, ids, (ids != 0).long())
    z = ours.forward_features(x)
    _close(clip.decoder(Selection(z=z, rows=torch.arange(3), prefix=1)), img_tp)
    _close(clip.target_embedding({"text": ids}).candidates, txt_tp)
    _close(clip.target.log_scale, tp.target.clr.logit_scale)


@pytest.mark.parametrize("norm", ["post", "pre"])
@torch.no_grad()
def test_bart_encoder_decoder(tmp_path, norm, capsys):
    tp, ours = _convert(tmp_path, dict(BART, layernorm_positioning=norm))
    assert "share_embedding" in capsys.readouterr().err  # the note: the decoder's input copy trains apart
    src, tgt = _text(pad=2), _text(n=9)
    seg = (src != 0).long()
    logits_tp = tp.target.lm.output_layer(tp.decode(src, seg, tgt))
    lm = ours.objectives["lm"]
    z = ours.encoder(ours.embedding(src))
    out = lm.decoder(Selection(z=z, rows=torch.arange(3), pad_mask=src == 0), target_input=tgt)
    _close(out @ lm.target_embedding.word.weight.T + lm.target_embedding.bias, logits_tp)


def test_untied_output_layer_is_refused(tmp_path, capsys):
    cfg = dict(GPT2, tie_weights=False)
    (tmp_path / "tp.json").write_text(json.dumps(cfg))
    torch.save(TPModel(cfg, V).perturb().state_dict(), tmp_path / "tp.bin")
    args = ["--config", str(tmp_path / "tp.json"), "--vocab-size", str(V), "--output", str(tmp_path / "r.json"),
            "--checkpoint", str(tmp_path / "tp.bin"), "--output-checkpoint", str(tmp_path / "ours")]
    assert convert_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "target.lm.output_layer.weight" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "ours").exists()


# What the rest of TencentPretrain's models/ folder needs (the first thing each config trips on).
REFUSED = {
    "t5": (dict(BART, hidden_act="relu", relative_position_embedding=True, layernorm="t5",
                remove_attention_scale=True, remove_transformer_bias=True, embedding=["word"],
                tgt_embedding=["word"]), "hidden_act 'relu'"),
    "t5-v1_1": (dict(BART, hidden_act="gelu_fast", relative_position_embedding=True, feed_forward="gated",
                     embedding=["word"], tgt_embedding=["word"]), "relative_position_embedding"),
    "llama": (dict(GPT2, hidden_act="silu", rotary_position_embedding=True, layernorm="rms",
                   feed_forward="gated", embedding=["word"]), "hidden_act 'silu'"),
    "bloom": (dict(GPT2, hidden_act="gelu", alibi_position_embedding=True, layer_number_scale=True,
                   embedding=["word"]), "alibi_position_embedding"),
    "albert": (dict(BERT, emb_size=16, factorized_embedding_parameterization=True, parameter_sharing=True),
               "factorized_embedding_parameterization"),
    "pegasus": (dict(BART, embedding=["word", "sinusoidalpos"], tgt_embedding=["word", "sinusoidalpos"]),
                "sinusoidalpos"),
    "lstm": (dict(GPT2, encoder="lstm"), "encoder 'lstm'"),
    "dall-e": (dict(BERT, mask="prefix", target=["lm"]), "mask 'prefix'"),
    "vilt": (dict(BERT, embedding=["word_patch", "pos", "seg"]), "embedding 'word_patch'"),
    "beit": (dict(VIT, embedding=["masked_patch", "pos"], target=["mlm"]), "embedding 'masked_patch'"),
    "s2t": (dict(BART, embedding=["speech", "sinusoidalpos"]), "embedding 'speech'"),
    "sbert": ({k: v for k, v in CLIP.items() if k != "target"}, "dual-stream model with target []"),
    "bilm": (dict(BERT, target=["bilm"]), "target 'bilm'"),
    "cnn": (dict(GPT2, encoder="gatedcnn"), "encoder 'gatedcnn'"),
}


@pytest.mark.parametrize("family", sorted(REFUSED))
def test_the_rest_is_refused_in_one_line(family, tmp_path, capsys):
    cfg, what = REFUSED[family]
    with pytest.raises(ConfigError, match="has no counterpart") as e:
        convert_config(cfg, vocab_size=V)
    assert what in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "tp.json").write_text(json.dumps(cfg))
    assert convert_main(["--config", str(tmp_path / "tp.json"), "--vocab-size", str(V),
                         "--output", str(tmp_path / "r.json")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_bert_base_sizes_match_tencentpretrain():
    """models/bert/base_config.json: TencentPretrain's count less the padding segment row, plus the identity
    2x2 class embedding + bias that carries its SP head."""
    full = dict(BERT, emb_size=768, hidden_size=768, feedforward_size=3072, heads_num=12, layers_num=12,
                max_seq_length=512)
    with torch.device("meta"):
        ours = sum(p.numel() for p in build_model(convert_config(full, vocab_size=21128), seed=0).parameters())
        tp = sum(p.numel() for p in TPModel(full, 21128).parameters())
    assert ours == tp - 768 + 6


def test_text_config_without_vocab_is_one_line_error(tmp_path, capsys):
    (tmp_path / "tp.json").write_text(json.dumps(BERT))
    assert convert_main(["--config", str(tmp_path / "tp.json"), "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "vocab" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.json").exists()
