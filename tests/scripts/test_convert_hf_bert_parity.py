"""A randomly initialised transformers BertModel, converted, gives our hidden states within 1e-5 and our
WordPiece tokenizer its token ids; converting back gives the same weights."""
import os
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from m3i_modular.training import checkpoint as ckpt  # noqa: E402
from m3i_modular.data.tokenizers import tokenizer_from_dir  # noqa: E402
from m3i_modular.recipe.model import build_model  # noqa: E402
from convert_hf_bert import main as convert_main  # noqa: E402

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "##s", "run", "##ning", ",", ".", "!", "a", "uber", "hello"]  # "Über" must strip to "uber"


def _hf_dir(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=48, max_position_embeddings=24,
                                  type_vocab_size=2, hidden_act="gelu")
    model = transformers.BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases, so a swapped parameter shows
        for n, p in model.named_parameters():
            if "LayerNorm" in n or n.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    d = tmp_path / "hf"
    model.save_pretrained(d)
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    return model, d


def test_hf_bert_roundtrip(tmp_path):
    hf, d = _hf_dir(tmp_path)
    assert convert_main(["to-ours", "--input", str(d), "--output", str(tmp_path / "ours")]) == 0
    cdir = ckpt.resolve_checkpoint(str(tmp_path / "ours"))
    cfg = ckpt.load_config_json(cdir)
    ours = build_model(cfg["model"], cfg.get("shared"), seed=1)
    ours.load_state_dict(ckpt.load_tensors(cdir, "model"))
    ours.eval()

    text = "The cats sat on a mat, running! Über hello dogs."
    tok = tokenizer_from_dir(os.path.join(cdir, "tokenizer"))
    try:  # transformers >= 5 names the argument `vocab`, older versions `vocab_file`
        hf_tok = transformers.BertTokenizer(vocab=str(d / "vocab.txt"), do_lower_case=True)
    except TypeError:
        hf_tok = transformers.BertTokenizer(vocab_file=str(d / "vocab.txt"), do_lower_case=True)
    ids = tok.encode(text)
    assert ids == hf_tok.encode(text, add_special_tokens=False)
    assert tok.unk_id not in ids

    seq = torch.tensor([[tok.bos_id] + ids[:8] + [tok.eos_id] + ids[8:] + [tok.eos_id]])
    seg = torch.zeros_like(seq)
    seg[0, 10:] = 1
    with torch.no_grad():
        ref = hf.bert(input_ids=seq, token_type_ids=seg).last_hidden_state
        z = ours.encoder(ours.embedding(seq, segments=seg))
        ref_logits = hf(input_ids=seq, token_type_ids=seg).logits
        obj = ours.objectives["mlm"]
        from m3i_modular.interfaces import Selection
        pred = obj.decoder(Selection(z=z, rows=torch.arange(1)))
        te = obj.target_embedding
        logits = pred @ te.word.weight.T + te.bias
    assert (z - ref).abs().max() < 1e-5
    assert (logits - ref_logits).abs().max() < 1e-4

    assert convert_main(["to-hf", "--input", str(tmp_path / "ours"), "--output", str(tmp_path / "back")]) == 0
    back = transformers.BertForMaskedLM.from_pretrained(tmp_path / "back").eval()
    src = hf.state_dict()
    for k, v in back.state_dict().items():
        if "pooler" in k:
            continue  # not converted (our SOP head has no pooler)
        assert torch.equal(v, src[k]), k
