"""Shared helpers for the text recipe tests: a tiny synthetic corpus tokenized into shards."""
import os

from m3i_modular.preprocess.synthetic_text import write_corpus
from m3i_modular.preprocess.text_writer import write_text_shards
from m3i_modular.data.tokenizers import tokenizer_from_path

TINY = ["model.embedding.word.dim=32", "model.embedding.position.dim=32", "model.encoder.dim=32",
        "model.encoder.layers=2", "model.encoder.heads=2", "model.embedding.position.max_length=32",
        "data.sources.0.seq_length=32", "train.batch_size=16", "train.num_workers=0", "train.progress=false",
        "train.log_every=50", "train.save_every=0", "schedule.warmup_steps=10"]


def make_corpus(root: str, *, train_docs: int = 1500, heldout_docs: int = 200, **grammar) -> dict:
    """Train / held-out corpora in BERT and LM shard layouts, and the vocab."""
    _, vocab = write_corpus(root, documents=train_docs, seed=0, name="train.txt", **grammar)
    write_corpus(root, documents=heldout_docs, seed=1, name="heldout.txt", **grammar)
    tok = tokenizer_from_path(vocab)
    out = {"vocab": vocab, "vocab_size": tok.vocab_size}
    for split in ("train", "heldout"):
        src = [os.path.join(root, f"{split}.txt")]
        for kind, eos in (("bert", False), ("lm", True)):
            path = os.path.join(root, f"{split}_{kind}")
            write_text_shards(src, path, tok, fmt="bert", append_eos=eos, progress=False)
            out[f"{split}_{kind}"] = path
    return out
