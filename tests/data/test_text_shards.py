"""Token shards: round trips for the three formats, worker/shard invariance, failures leave nothing."""
import json
import os

import numpy as np
import pytest

from m3i_modular.data.sources.token_store import TokenShards, token_dtype
from m3i_modular.preprocess.text_writer import write_text_shards
from m3i_modular.data.tokenizers import CharTokenizer
from m3i_modular.errors import DataError

DOCS = [["the cat sat.", "on the mat"], ["a dog"], ["ünïcode ok", "two", "three sentences"],
        ["x"], ["birds sing while the fox jumps over lazy dogs"]]


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer.from_texts([s for d in DOCS for s in d])


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def _bert_corpus(tmp_path, name="c.bert"):
    # blank lines (several, or with spaces) separate documents; leading/trailing blanks are ignored
    return _write(tmp_path / name, "\n" + "\n \n\n".join("\n".join(d) for d in DOCS) + "\n\n")


def _docs(ts):
    return [ts[i].tolist() for i in range(len(ts))]


def test_bert_format_keeps_sentences_and_documents(tok, tmp_path):
    totals = write_text_shards([_bert_corpus(tmp_path)], str(tmp_path / "out"), tok, fmt="bert",
                               progress=False)
    ts = TokenShards(str(tmp_path / "out"))
    assert len(ts) == len(DOCS) == totals["documents"]
    for i, doc in enumerate(DOCS):
        assert [s.tolist() for s in ts.sentences(i)] == [tok.encode(s) for s in doc]
        assert ts[i].tolist() == [t for s in doc for t in tok.encode(s)]
    assert ts.num_sentences == sum(map(len, DOCS)) == totals["sentences"]
    assert ts.document_lengths().tolist() == [sum(len(s) for s in d) for d in DOCS]
    assert ts[-1].tolist() == tok.encode(DOCS[-1][0])
    assert ts[0].dtype == np.uint16 and not ts[0].flags.writeable
    assert ts.tokenizer().tokens == tok.tokens


def test_lines_format_and_several_files_in_order(tok, tmp_path):
    lines = [" ".join(d) for d in DOCS]
    a = _write(tmp_path / "a.txt", "\n".join(lines[:2]) + "\n\n")
    b = _write(tmp_path / "b.txt", "\n".join(lines[2:]))  # no final newline
    write_text_shards([a, b], str(tmp_path / "out"), tok, fmt="lines", progress=False)
    ts = TokenShards(str(tmp_path / "out"))
    assert _docs(ts) == [tok.encode(line) for line in lines]
    assert all(len(ts.sentences(i)) == 1 for i in range(len(ts)))


def test_jsonl_format_with_text_key_and_eos(tmp_path):
    tok = CharTokenizer.from_texts(["héllo wörld \"quoted\""])
    rows = [{"body": "héllo"}, {"body": "wörld \"quoted\"", "meta": 1}]
    path = _write(tmp_path / "c.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    write_text_shards([path], str(tmp_path / "out"), tok, fmt="jsonl", text_key="body", append_eos=True,
                      progress=False)
    ts = TokenShards(str(tmp_path / "out"))
    assert _docs(ts) == [tok.encode(r["body"]) + [tok.eos_id] for r in rows]
    assert ts.header["source_format"] == "jsonl" and ts.header["append_eos"] is True


def test_workers_and_shard_size_do_not_change_the_data(tok, tmp_path):
    corpus = _write(tmp_path / "big.txt", "".join(f"{' '.join(d)} {i}\n" for i in range(60) for d in DOCS))
    write_text_shards([corpus], str(tmp_path / "one"), tok, workers=1, chunk_docs=7, progress=False)
    write_text_shards([corpus], str(tmp_path / "two"), tok, workers=2, chunk_docs=7, progress=False)
    for ext in (".bin", ".idx", ".json"):
        one = (tmp_path / "one" / f"shard-00000{ext}").read_bytes()
        assert one == (tmp_path / "two" / f"shard-00000{ext}").read_bytes()
    write_text_shards([corpus], str(tmp_path / "many"), tok, chunk_docs=5, max_shard_tokens=500,
                      progress=False)
    single, many = TokenShards(str(tmp_path / "one")), TokenShards(str(tmp_path / "many"))
    assert len(many.shards) > 1
    assert all(s.num_tokens <= 500 for s in many.shards)
    assert _docs(many) == _docs(single) and len(single) == 60 * len(DOCS)
    # one shard read on its own
    first = TokenShards(str(tmp_path / "many" / "shard-00000.bin"))
    assert _docs(first) == _docs(single)[:len(first)]


def test_bad_jsonl_line_fails_with_its_number_and_leaves_nothing(tok, tmp_path):
    good = "\n".join(json.dumps({"text": "the cat"}) for _ in range(20))
    path = _write(tmp_path / "c.jsonl", good + "\n{\"text\": \"the\"\n" + good)
    before = sorted(os.listdir(tmp_path))
    for workers in (1, 2):
        with pytest.raises(DataError, match=r"c\.jsonl:21: invalid JSON"):
            write_text_shards([path], str(tmp_path / "out"), tok, fmt="jsonl", workers=workers,
                              chunk_docs=4, progress=False)
        assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary directory


def test_failed_overwrite_keeps_previous_output(tok, tmp_path):
    out = str(tmp_path / "out")
    write_text_shards([_bert_corpus(tmp_path)], out, tok, fmt="bert", progress=False)
    before = {n: (tmp_path / "out" / n).read_bytes() for n in os.listdir(out) if n.startswith("shard")}
    bad = _write(tmp_path / "bad.jsonl", "[1, 2]\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: expected an object with a string 'text'"):
        write_text_shards([bad], out, tok, fmt="jsonl", overwrite=True, progress=False)
    assert {n: (tmp_path / "out" / n).read_bytes() for n in before} == before
    with pytest.raises(DataError, match="already exists"):
        write_text_shards([bad], out, tok, fmt="jsonl", progress=False)
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith(".")) == []


def test_missing_input_and_truncated_shard(tok, tmp_path):
    with pytest.raises(DataError, match="missing.txt: input file not found"):
        write_text_shards([str(tmp_path / "missing.txt")], str(tmp_path / "out"), tok, progress=False)
    assert not os.path.exists(tmp_path / "out")
    write_text_shards([_bert_corpus(tmp_path)], str(tmp_path / "out"), tok, fmt="bert", progress=False)
    bin_path = tmp_path / "out" / "shard-00000.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-2])
    with pytest.raises(DataError, match="incomplete"):
        TokenShards(str(tmp_path / "out"))
    with pytest.raises(DataError, match="no token shards"):
        TokenShards(str(tmp_path))


def test_empty_corpus_and_dtype_choice(tok, tmp_path):
    with pytest.raises(DataError, match="the corpus holds no text"):  # empty shards would only fail later
        write_text_shards([_write(tmp_path / "e.txt", "\n\n")], str(tmp_path / "out"), tok, progress=False)
    assert not (tmp_path / "out").exists()
    assert token_dtype(1 << 16) == np.uint16 and token_dtype((1 << 16) + 1) == np.uint32


def test_corpus_is_streamed_in_chunks(tmp_path):
    from m3i_modular.preprocess.text_writer import read_chunks
    path = _write(tmp_path / "c.txt", "aa\n\nbbb\ncc\ndd\n")
    chunks = read_chunks([path], "lines", 2)
    fmt, name, items, nbytes = next(chunks)  # only the first two documents have been read
    assert (fmt, name, items, nbytes) == ("lines", path, [(1, "aa"), (3, "bbb")], 3 + 1 + 4)
    assert [c[2] for c in chunks] == [[(4, "cc"), (5, "dd")]]
