"""The real `preprocess.py` command line: tokenizer + text end to end, and one-line errors with exit 2."""
import json
import os
import subprocess
import sys

import pytest

from m3i_modular.data.sources.token_store import TokenShards
from m3i_modular.data.tokenizers import tokenizer_from_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = "the quick brown fox jumps over lazy dog and a cat sat on mat while birds sing".split()


def _cli(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(ROOT, "preprocess.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_tokenizer_then_text_end_to_end(tmp_path):
    lines = [" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(6)) for i in range(200)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = _cli("tokenizer", "--input", "c.txt", "--output", "tok", "--vocab-size", "45", "--threads", "1",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "tok")) == ["m3i_tokenizer.json", "spm.model", "spm.vocab"]
    r = _cli("text", "--input", "c.txt", "--tokenizer", "tok", "--output", "shards", "--workers", "2",
             "--chunk-docs", "16", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tok = tokenizer_from_dir(str(tmp_path / "tok"))
    ts = TokenShards(str(tmp_path / "shards"))
    assert [ts[i].tolist() for i in range(len(ts))] == [tok.encode(line) for line in lines]
    assert tok.decode(ts[3]) == lines[3]


@pytest.mark.parametrize("case", ["bad_jsonl", "missing_input", "bad_tokenizer_config"])
def test_errors_are_one_line_exit_2(tmp_path, case):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nthe\ncat\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"text": "the cat"}\n{"text": "the"}\n{"text": the cat}\n',
                                      encoding="utf-8")
    (tmp_path / "tok.json").write_text(json.dumps({"type": "wordpiece", "vocab": "vocab.txt", "lower": 1}))
    args = {"bad_jsonl": ["--input", "c.jsonl", "--tokenizer", "vocab.txt"],
            "missing_input": ["--input", "nope.jsonl", "--tokenizer", "vocab.txt"],
            "bad_tokenizer_config": ["--input", "c.jsonl", "--tokenizer", "tok.json"]}[case]
    r = _cli("text", "--format", "jsonl", *args, "--output", "out", "--workers", "2", "--no-progress",
             cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    expected = {"bad_jsonl": "c.jsonl:3: invalid JSON", "missing_input": "nope.jsonl: input file not found",
                "bad_tokenizer_config": "tok.json:lower: unknown key 'lower' for tokenizer 'wordpiece'"}[case]
    assert expected in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["c.jsonl", "tok.json", "vocab.txt"]  # nothing written
