"""Fine-tuning a pretrained bert_mini on 32 labelled sentences beats random initialisation on a held-out
split, for each of 3 seeds (same protocol and seeds for both arms).

The corpus: documents with a binary latent (a topic, like sentiment) that picks every content word; the
label of a sentence is that latent. There are 150 content words, so 32 labelled sentences (~100 content
tokens) leave many dev words unseen; MLM on the unlabelled corpus learns which words go together, which
is what lets the pretrained encoder classify sentences made of words the labelled set never showed.
(With 4 topics x 180 words, 1500 MLM steps at this size learn no topic structure at all: the word
embeddings' topic purity and a frozen probe stay at chance, so pretraining cannot help there.)"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "finetune"))
sys.path.insert(0, os.path.join(ROOT, "tests", "recipes"))

from run_classifier import main as classifier_main  # noqa: E402  (the command line)
from textlm_helpers import TINY, make_corpus  # noqa: E402

from m3i_modular.cli import main as pretrain_main  # noqa: E402
from m3i_modular.eval_cli.classifier import run  # noqa: E402
from m3i_modular.preprocess.synthetic_text import write_classification  # noqa: E402

GRAMMAR = {"topics": 2, "nouns": 60, "verbs": 15}
# fine-tuning protocol, identical for both arms: full fine-tuning, mean-pool linear head, AdamW
PROTOCOL = {"epochs": 25, "lr": 1e-3, "batch_size": 16}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    c = make_corpus(str(root), train_docs=2000, heldout_docs=10, **GRAMMAR)
    v = c["vocab_size"]
    out = str(root / "run")
    args = ["--config", os.path.join(ROOT, "models", "bert_mini.json"), "--output-dir", out]
    for o in TINY + ["model.embedding.segment.dim=32", "model.embedding.norm.dim=32",
                     f"tokenizer.vocab={c['vocab']}", f"data.sources.0.path={c['train_bert']}",
                     f"model.embedding.word.vocab_size={v}", f"model.batch_transforms.0.vocab_size={v}",
                     "train.total_steps=800", "optim.lr=0.002"]:
        args += ["--set", o]
    assert pretrain_main(args) == 0
    write_classification(str(root / "train.tsv"), examples=32, seed=10, **GRAMMAR)
    write_classification(str(root / "dev.tsv"), examples=400, seed=11, **GRAMMAR)
    return out, root


def test_pretrained_beats_random_init(pretrained):
    out, root = pretrained
    cfg = os.path.join(out, "config.json")
    results = []
    for seed in range(3):
        kw = dict(train=str(root / "train.tsv"), dev=str(root / "dev.tsv"), seed=seed, **PROTOCOL)
        results.append((run(pretrained=out, **kw)["accuracy"], run(config=cfg, **kw)["accuracy"]))
    print("dev accuracy (pretrained, random init) per seed:", results)
    # every seed must win (not only the mean)
    assert all(pre > rnd for pre, rnd in results), results


def test_bad_tsv_is_one_line_error(pretrained, tmp_path, capsys):
    out, root = pretrained
    bad = tmp_path / "bad.tsv"
    bad.write_text("0\tfine\nno tab here\n")
    assert classifier_main(["--pretrained", out, "--train", str(bad), "--dev", str(root / "dev.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.tsv:2" in err and len(err.splitlines()) == 1
