"""bert_mini / gpt2_mini train through the real CLI on a synthetic corpus and beat count baselines on
held-out text: MLM masked-token accuracy > the unigram-frequency guess, LM perplexity < a bigram model."""
import math
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from textlm_helpers import TINY, make_corpus  # noqa: E402

from m3i_modular.training import checkpoint as ckpt  # noqa: E402
from m3i_modular.cli import main as pretrain_main  # noqa: E402
from m3i_modular.data.views.pipeline import collate  # noqa: E402
from m3i_modular.data.sources.token_shards import TokenShardsSource  # noqa: E402
from m3i_modular.data.sources.token_store import TokenShards  # noqa: E402
from m3i_modular.recipe.model import build_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERT_TINY = TINY + ["model.embedding.segment.dim=32", "model.embedding.norm.dim=32"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(str(tmp_path_factory.mktemp("toy")))


def _train(recipe, overrides, out):
    args = ["--config", os.path.join(ROOT, "models", recipe), "--output-dir", out]
    for o in overrides:
        args += ["--set", o]
    assert pretrain_main(args) == 0
    d = ckpt.resolve_checkpoint(out)
    cfg = ckpt.load_config_json(d)
    model = build_model(cfg["model"], cfg.get("shared"), seed=0)
    model.load_state_dict(ckpt.load_tensors(d, "model"))
    return model.eval()


def _batches(path, mode, n=64, bs=32):
    src = TokenShardsSource(path=path, seq_length=32, mode=mode)
    items = [dict(src[i], views={}, geometry={}, masks={}, label=-1, index=i, key="", present={})
             for i in range(min(n, len(src)))]
    for it in items:
        it["text"] = it.pop("tokens")
    return [collate(items[i:i + bs]) for i in range(0, len(items), bs)]


def test_bert_mini_beats_unigram(corpus, tmp_path):
    v = corpus["vocab_size"]
    model = _train("bert_mini.json", BERT_TINY + [
        f"tokenizer.vocab={corpus['vocab']}", f"data.sources.0.path={corpus['train_bert']}",
        f"model.embedding.word.vocab_size={v}", f"model.batch_transforms.0.vocab_size={v}",
        "train.total_steps=150"], str(tmp_path / "bert"))
    train_ids = np.asarray(TokenShards(corpus["train_bert"]).shards[0].maps()[0], dtype=np.int64)
    counts = np.bincount(train_ids, minlength=v)
    counts[:5] = 0  # specials are never masked
    guess = int(counts.argmax())
    hits = base = total = 0.0
    with torch.no_grad():
        for b in _batches(corpus["heldout_bert"], "bert"):
            with torch.random.fork_rng():
                torch.manual_seed(7)
                masked = model.batch_transforms[0](b)["mlm_mask"]
            with torch.random.fork_rng():
                torch.manual_seed(7)
                out = model(b)
            n = float(masked.sum())
            hits += float(out["mlm_acc"]) * n
            base += float((b["text"][masked] == guess).sum())
            total += n
    acc, unigram = hits / total, base / total
    assert acc > unigram + 0.05, (acc, unigram)


def test_gpt2_mini_beats_bigram(corpus, tmp_path):
    v = corpus["vocab_size"]
    model = _train("gpt2_mini.json", TINY + [
        f"tokenizer.vocab={corpus['vocab']}", f"data.sources.0.path={corpus['train_lm']}",
        f"model.embedding.word.vocab_size={v}", "train.total_steps=600", "optim.lr=0.003"], str(tmp_path / "gpt"))
    train = np.asarray(TokenShards(corpus["train_lm"]).shards[0].maps()[0], dtype=np.int64)
    pairs = np.zeros((v, v))
    np.add.at(pairs, (train[:-1], train[1:]), 1.0)
    batches = _batches(corpus["heldout_lm"], "lm")
    nll = count = 0.0
    with torch.no_grad():
        for b in batches:
            out = model(b)
            n = float(out["lm_count"])
            nll, count = nll + float(out["lm_loss"]) * n, count + n
    model_ppl = math.exp(nll / count)
    best = math.inf
    for k in (1e-3, 1e-2, 1e-1, 1.0):  # the bigram's best smoothing on the held-out data itself
        probs = (pairs + k) / (pairs + k).sum(1, keepdims=True)
        ll = [np.log(probs[x[:-1], x[1:]]).sum() for x in (b["text"].numpy() for b in batches) for x in x]
        n = sum(len(x) - 1 for b in batches for x in b["text"].numpy())
        best = min(best, math.exp(-sum(ll) / n))
    assert model_ppl < best, (model_ppl, best)
