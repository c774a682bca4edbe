"""WordPiece: analytic cases, and ids equal to Hugging Face's BertTokenizer on a vocab built here."""
import pytest

from m3i_modular.data.tokenizers import WordPieceTokenizer, build_tokenizer, tokenizer_from_dir
from m3i_modular.errors import ConfigError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "quick", "brown", "fox", "jump", "##s", "##ed", "over", "lazy", "dog", "un", "##aff",
         "##able", "cafe", "naive", "hello", "world", "a", "b", "c", "##b", "##c", "中", "国", ",", ".",
         "!", "'", "$", "-", "s", "t", "re", "##sume", "##ing", "run", "##n", "x", "##x"]

TEXTS = [
    "The quick brown fox jumped over the lazy dog.",
    "unaffable",
    "Café naïve RÉSUMÉ",
    "hello,world!  hello\tworld\n",
    "中国 中国人",
    "it's $5 - a-b-c",
    "runnning xxxx abcbc",
    "the [MASK] jumps",
    "supercalifragilistic",
    "\u00a0the\u200bfox\x00 dog\ufffd",
    "",
]


@pytest.fixture()
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in SPECIALS + WORDS), encoding="utf-8")
    return str(path)


def test_greedy_longest_match_and_unknown(vocab_file):
    tok = WordPieceTokenizer(vocab=vocab_file)
    ids = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    assert tok.encode("unaffable") == [ids["un"], ids["##aff"], ids["##able"]]
    assert tok.encode("Jumps!") == [ids["jump"], ids["##s"], ids["!"]]
    assert tok.encode("jumpz") == [ids["[UNK]"]]  # an unmatched remainder makes the whole word unknown
    assert tok.encode("Café") == [ids["cafe"]]  # lower-cased and accent-stripped
    assert tok.encode("中国") == [ids["中"], ids["国"]]  # CJK characters split apart
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.vocab_size == len(SPECIALS) + len(WORDS)


def test_decode_joins_subwords(vocab_file):
    tok = WordPieceTokenizer(vocab=vocab_file)
    ids = tok.encode("The fox jumped over the lazy dog")
    assert tok.decode([tok.bos_id] + ids + [tok.eos_id, tok.pad_id]) == "the fox jumped over the lazy dog"


def _hf_bert(transformers, vocab_file):
    import inspect
    params = inspect.signature(transformers.BertTokenizer.__init__).parameters
    if "vocab_file" in params:  # transformers 4.x
        return transformers.BertTokenizer(vocab_file=vocab_file, do_lower_case=True)
    tokens = open(vocab_file, encoding="utf-8").read().splitlines()  # 5.x takes the vocab itself
    return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


def test_matches_hf_bert_tokenizer(vocab_file):
    transformers = pytest.importorskip("transformers")
    hf = _hf_bert(transformers, vocab_file)
    ours = WordPieceTokenizer(vocab=vocab_file)
    for text in TEXTS:
        assert ours.encode(text) == hf.encode(text, add_special_tokens=False), text
    assert (ours.pad_id, ours.bos_id, ours.eos_id, ours.mask_id) == (
        hf.pad_token_id, hf.cls_token_id, hf.sep_token_id, hf.mask_token_id)


def test_save_reload_and_registry(vocab_file, tmp_path):
    tok = build_tokenizer({"type": "wordpiece", "vocab": vocab_file})
    written = tok.save(str(tmp_path / "saved"))
    assert sorted(written) == ["m3i_tokenizer.json", "vocab.txt"]
    again = tokenizer_from_dir(str(tmp_path / "saved"))
    assert isinstance(again, WordPieceTokenizer)
    assert again.tokens == tok.tokens
    for text in TEXTS:
        assert again.encode(text) == tok.encode(text)


def test_config_errors(vocab_file, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        build_tokenizer({"type": "wordpiece", "vocab": str(tmp_path / "missing.txt")})
    with pytest.raises(ConfigError, match="did you mean 'wordpiece'"):
        build_tokenizer({"type": "wordpeice", "vocab": vocab_file})
    with pytest.raises(ConfigError, match="lowercase"):
        build_tokenizer({"type": "wordpiece", "vocab": vocab_file, "lower_case": True})
