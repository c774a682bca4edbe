"""SentencePiece training + round trips, the char tokenizer, and save/reload equality."""
import json
import os

import pytest

from m3i_modular.data.tokenizers import (CharTokenizer, SentencePieceTokenizer, build_tokenizer,
                                         tokenizer_from_dir, train_sentencepiece)
from m3i_modular.errors import ConfigError, DataError

WORDS = "the quick brown fox jumps over lazy dog and a cat sat on mat while birds sing".split()


def _corpus(path, n=300):
    lines = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(8)) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("spm")
    corpus = _corpus(d / "corpus.txt")
    outputs = train_sentencepiece([corpus], str(d / "tok"), 64, "unigram", hard_vocab_limit=False)
    return outputs[0]


def test_train_writes_model_and_vocab_only(spm_model):
    d = os.path.dirname(spm_model)
    assert sorted(os.listdir(d)) == ["corpus.txt", "tok.model", "tok.vocab"]  # no temporary left over
    with open(os.path.join(d, "tok.vocab"), encoding="utf-8") as f:
        pieces = [line.split("\t")[0] for line in f]
    assert pieces[:5] == ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]


def test_spm_round_trip_and_special_ids(spm_model):
    tok = build_tokenizer({"type": "sentencepiece", "model": spm_model})
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.vocab_size == len(open(spm_model.replace(".model", ".vocab"), encoding="utf-8").readlines())
    text = "the lazy cat sat on the mat"
    ids = tok.encode(text)
    assert ids and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    # specials are dropped on decode
    assert tok.decode([tok.bos_id, tok.mask_id] + ids + [tok.eos_id, tok.pad_id]) == text
    assert tok.token_to_id("<mask>") == 4 and tok.token_to_id("no-such-piece") is None


def test_spm_save_reload(spm_model, tmp_path):
    tok = SentencePieceTokenizer(model=spm_model)
    assert sorted(tok.save(str(tmp_path / "t"))) == ["m3i_tokenizer.json", "spm.model"]
    again = tokenizer_from_dir(str(tmp_path / "t"))
    text = "birds sing while a fox jumps"
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size


def test_spm_training_error_is_one_line(tmp_path):
    corpus = _corpus(tmp_path / "c.txt", n=5)
    with pytest.raises(DataError) as err:
        train_sentencepiece([corpus], str(tmp_path / "m"), 8, "unigram")  # fewer pieces than characters
    assert "\n" not in str(err.value) and "vocab" in str(err.value).lower()
    assert sorted(os.listdir(tmp_path)) == ["c.txt"]
    with pytest.raises(DataError, match="not found"):
        train_sentencepiece([str(tmp_path / "missing.txt")], str(tmp_path / "m"), 64)


def test_char_from_texts_counts_and_round_trip():
    tok = CharTokenizer.from_texts(["abca", "ba"])
    # specials first, then by decreasing count (a:3, b:2, c:1)
    assert tok.tokens == ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]", "a", "b", "c"]
    assert tok.encode("cab") == [7, 5, 6]
    assert tok.encode("az") == [5, tok.unk_id]
    assert tok.decode([tok.bos_id, 7, 5, 6, tok.eos_id, tok.pad_id]) == "cab"
    assert tok.decode([tok.bos_id, 7], skip_special=False) == "[BOS]c"


def test_char_from_corpus_file_and_vocab_file(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("héllo wörld\nhello\n", encoding="utf-8")
    tok = build_tokenizer({"type": "char", "corpus": [str(corpus)], "min_count": 2})
    assert "\n" not in tok.tokens and "ö" not in tok.tokens and "l" in tok.tokens
    written = tok.save(str(tmp_path / "saved"))
    assert sorted(written) == ["char_vocab.json", "m3i_tokenizer.json"]
    again = tokenizer_from_dir(str(tmp_path / "saved"))
    assert again.tokens == tok.tokens
    assert again.encode("hello wörld") == tok.encode("hello wörld")
    vocab = json.loads((tmp_path / "saved" / "char_vocab.json").read_text(encoding="utf-8"))
    direct = build_tokenizer({"type": "char", "vocab": str(tmp_path / "saved" / "char_vocab.json")})
    assert direct.tokens == vocab


def test_char_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        build_tokenizer({"type": "char"})
    with pytest.raises(ConfigError, match="expected int"):
        build_tokenizer({"type": "char", "corpus": ["x"], "min_count": "2"})
    with pytest.raises(DataError, match="no m3i_tokenizer.json"):
        tokenizer_from_dir(str(tmp_path))
