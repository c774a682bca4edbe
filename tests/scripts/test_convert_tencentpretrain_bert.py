"""TencentPretrain BERT config -> our recipe with TencentPretrain's parameter count; a TencentPretrain-keyed
checkpoint converts and reproduces the model it was written from."""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from m3i_modular import checkpoint as ckpt  # noqa: E402
from m3i_modular.convert.tencentpretrain import convert_config  # noqa: E402
from m3i_modular.model import build_model  # noqa: E402
from convert_tencentpretrain import main as convert_main  # noqa: E402

TP_BERT_BASE = {"emb_size": 768, "feedforward_size": 3072, "hidden_size": 768, "hidden_act": "gelu",
                "heads_num": 12, "layers_num": 12, "max_seq_length": 512, "dropout": 0.1,
                "data_processor": "bert", "embedding": ["word", "pos", "seg"], "encoder": "transformer",
                "mask": "fully_visible", "target": ["mlm", "sp"], "tie_weights": True}


def tp_bert_params(v, h, f, p, n):
    """TencentPretrain's BERT: word/pos/seg (3 rows, 0 = padding) + LayerNorm; per layer 3 projections +
    output, 2 LayerNorms, 2 FFN linears; MLM: linear_1 + LayerNorm + linear_2 (weight tied: bias only);
    SP: linear_1 (pooler) + linear_2 (2 classes)."""
    emb = v * h + p * h + 3 * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    mlm = (h * h + h) + 2 * h + v
    sp = (h * h + h) + (h * 2 + 2)
    return emb + n * layer + mlm + sp


def test_tp_bert_base_parameter_count():
    model_cfg = convert_config(TP_BERT_BASE, vocab_size=21128)
    with torch.device("meta"):
        model = build_model(model_cfg, seed=0)
    ours = sum(p.numel() for p in model.parameters())
    # ours drops the padding segment row (-768) and adds the identity 2x2 class embedding + bias (+6)
    assert ours == tp_bert_params(21128, 768, 3072, 512, 12) - 768 + 6


def _to_tp(sd, layers):
    """Our state -> TencentPretrain keys (the converter's inverse, written out here for the test)."""
    out = {"embedding.word.embedding.weight": sd["embedding.parts.word.weight"],
           "embedding.pos.embedding.weight": sd["embedding.parts.position.weight"],
           "embedding.seg.embedding.weight": torch.cat([torch.zeros(1, sd["embedding.parts.segment.weight"].shape[1]),
                                                        sd["embedding.parts.segment.weight"]]),
           "embedding.layer_norm.gamma": sd["embedding.parts.norm.norm.weight"],
           "embedding.layer_norm.beta": sd["embedding.parts.norm.norm.bias"],
           "target.mlm.linear_1.weight": sd["objectives.mlm.decoder.dense.weight"],
           "target.mlm.linear_1.bias": sd["objectives.mlm.decoder.dense.bias"],
           "target.mlm.layer_norm.gamma": sd["objectives.mlm.decoder.norm.weight"],
           "target.mlm.layer_norm.beta": sd["objectives.mlm.decoder.norm.bias"],
           "target.mlm.linear_2.weight": sd["embedding.parts.word.weight"],
           "target.mlm.linear_2.bias": sd["objectives.mlm.target_embedding.bias"],
           "target.sp.linear_1.weight": sd["objectives.sop.decoder.dense.weight"],
           "target.sp.linear_1.bias": sd["objectives.sop.decoder.dense.bias"],
           "target.sp.linear_2.weight": sd["objectives.sop.decoder.out.weight"],
           "target.sp.linear_2.bias": sd["objectives.sop.decoder.out.bias"]}
    for i in range(layers):
        s, t = f"encoder.blocks.{i}.", f"encoder.transformer.{i}."
        for p in ("weight", "bias"):
            for j, part in enumerate(sd[s + f"attn.qkv.{p}"].chunk(3)):
                out[t + f"self_attn.linear_layers.{j}.{p}"] = part
            out[t + f"self_attn.final_linear.{p}"] = sd[s + f"attn.proj.{p}"]
            out[t + f"feed_forward.linear_1.{p}"] = sd[s + f"mlp.fc1.{p}"]
            out[t + f"feed_forward.linear_2.{p}"] = sd[s + f"mlp.fc2.{p}"]
        for k, ours in (("layer_norm_1", "norm1"), ("layer_norm_2", "norm2")):
            out[t + f"{k}.gamma"], out[t + f"{k}.beta"] = sd[s + f"{ours}.weight"], sd[s + f"{ours}.bias"]
    return {k: v.clone() for k, v in out.items()}


def test_tp_bert_checkpoint_converts(tmp_path):
    small = dict(TP_BERT_BASE, emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2,
                 max_seq_length=16)
    (tmp_path / "tp.json").write_text(json.dumps(small))
    src = build_model(convert_config(small, vocab_size=40), seed=3).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        te = src.objectives["sop"].target_embedding  # TencentPretrain's SP head has no class matrix
        te.weight.copy_(torch.eye(2))
        te.bias.zero_()
    torch.save(_to_tp(src.state_dict(), 2), tmp_path / "tp.bin")
    args = ["--config", str(tmp_path / "tp.json"), "--vocab-size", "40", "--output", str(tmp_path / "r.json"),
            "--checkpoint", str(tmp_path / "tp.bin"), "--output-checkpoint", str(tmp_path / "ours")]
    assert convert_main(args) == 0
    d = ckpt.resolve_checkpoint(str(tmp_path / "ours"))
    recipe = json.loads((tmp_path / "r.json").read_text())
    dst = build_model(recipe["model"], seed=0).eval()
    dst.load_state_dict(ckpt.load_tensors(d, "model"))
    ids = torch.randint(5, 40, (2, 12))
    seg = torch.zeros_like(ids)
    seg[:, 6:] = 1
    with torch.no_grad():
        za = src.encoder(src.embedding(ids, segments=seg))
        zb = dst.encoder(dst.embedding(ids, segments=seg))
    assert torch.allclose(za, zb, atol=1e-6)
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k


def test_tp_missing_vocab_is_one_line_error(tmp_path, capsys):
    (tmp_path / "tp.json").write_text(json.dumps(TP_BERT_BASE))
    assert convert_main(["--config", str(tmp_path / "tp.json"), "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "vocab" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.json").exists()
