"""Fine-tuning a pretrained bert_mini on 48 labelled sentences beats random initialisation on a held-out
split, for each of 3 seeds (the topic words are many, so 48 examples alone cannot cover them)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "finetune"))
sys.path.insert(0, os.path.join(ROOT, "tests", "recipes"))

from run_classifier import main as classifier_main, run  # noqa: E402
from textlm_helpers import TINY, make_corpus  # noqa: E402

from m3i_modular.cli import main as pretrain_main  # noqa: E402
from m3i_modular.data.synthetic_text import write_classification  # noqa: E402

GRAMMAR = {"topics": 4, "nouns": 150, "verbs": 30}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    c = make_corpus(str(root), train_docs=3000, heldout_docs=10, **GRAMMAR)
    v = c["vocab_size"]
    out = str(root / "run")
    args = ["--config", os.path.join(ROOT, "models", "bert_mini.json"), "--output-dir", out]
    for o in TINY + ["model.embedding.segment.dim=32", "model.embedding.norm.dim=32",
                     f"tokenizer.vocab={c['vocab']}", f"data.sources.0.path={c['train_bert']}",
                     f"model.embedding.word.vocab_size={v}", f"model.batch_transforms.0.vocab_size={v}",
                     "train.total_steps=1500", "optim.lr=0.002"]:
        args += ["--set", o]
    assert pretrain_main(args) == 0
    write_classification(str(root / "train.tsv"), examples=48, seed=10, **GRAMMAR)
    write_classification(str(root / "dev.tsv"), examples=400, seed=11, **GRAMMAR)
    return out, root


@pytest.mark.xfail(strict=False, reason="UNMET (issue #6): at this tiny budget the pretrained encoder fine-tunes "
                   "worse than random init (0.36-0.44 vs 0.47 dev accuracy); needs a longer pretraining run, "
                   "a frozen-probe variant or a tuned fine-tuning lr")
def test_pretrained_beats_random_init(pretrained):
    out, root = pretrained
    cfg = os.path.join(out, "config.json")
    for seed in range(3):
        kw = dict(train=str(root / "train.tsv"), dev=str(root / "dev.tsv"), seed=seed, epochs=15)
        pre = run(pretrained=out, **kw)["accuracy"]
        rnd = run(config=cfg, **kw)["accuracy"]
        assert pre > rnd, (seed, pre, rnd)


def test_bad_tsv_is_one_line_error(pretrained, tmp_path, capsys):
    out, root = pretrained
    bad = tmp_path / "bad.tsv"
    bad.write_text("0\tfine\nno tab here\n")
    assert classifier_main(["--pretrained", out, "--train", str(bad), "--dev", str(root / "dev.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.tsv:2" in err and len(err.splitlines()) == 1
