"""Text corpora -> token-id shards (the layout is in m3i_modular/data/sources/token_store.py).

Input formats: `lines` (one document per line), `bert` (one sentence per line, a blank line between
documents), `jsonl` (one {"text": ...} object per line). A line-based document is one "sentence".
The corpus is streamed in chunks of documents; worker processes tokenize chunks and results are written
in input order, with a bounded number of chunks in flight so memory stays flat however large the corpus.
Everything is written into a temporary directory renamed at the end: a failure leaves no partial shard.
"""
from __future__ import annotations

import collections
import json
import multiprocessing
import os
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np

from ..runtime.atomic import atomic_dir
from ..errors import DataError
from ..data.sources.token_store import SHARD_VERSION, token_dtype
from ..data.tokenizers import Tokenizer, tokenizer_from_dir
from ..data.tokenizers.fingerprint import fingerprint

FORMATS = ("lines", "bert", "jsonl")

Chunk = Tuple[str, str, List[Tuple[int, Any]], int]  # (format, file, [(line number, payload)], bytes)
Result = Tuple[np.ndarray, np.ndarray, np.ndarray]  # (token ids, sentence lengths, sentences per document)


# --- reading the corpus --------------------------------------------------------------------------

def _lines(path: str) -> Iterator[Tuple[int, str, int]]:
    """(line number, text without the line break, bytes consumed), decoding UTF-8 with a located error."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot open input ({e.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            yield lineno, text.rstrip("\r\n"), len(raw)


def read_chunks(files: Sequence[str], fmt: str, chunk_docs: int) -> Iterator[Chunk]:
    """Stream documents as chunks of at most `chunk_docs`; JSON is parsed later, in the workers."""
    if fmt not in FORMATS:
        raise DataError(f"unknown text format '{fmt}' (valid: {', '.join(FORMATS)})")
    for path in files:
        if not os.path.isfile(path):
            raise DataError(f"{path}: input file not found")
    for path in files:
        items: List[Tuple[int, Any]] = []
        nbytes = 0
        sentences: List[str] = []
        first = 0
        for lineno, text, n in _lines(path):
            nbytes += n
            if fmt == "bert":
                if text.strip():
                    first = first or lineno
                    sentences.append(text.strip())
                    continue
                if sentences:  # a blank line closes the document
                    items.append((first, sentences))
                    sentences, first = [], 0
            elif text.strip():
                items.append((lineno, text.strip() if fmt == "lines" else text))
            if len(items) >= chunk_docs:
                yield fmt, path, items, nbytes
                items, nbytes = [], 0
        if sentences:
            items.append((first, sentences))
        if items or nbytes:
            yield fmt, path, items, nbytes


# --- tokenizing (in worker processes) ----------------------------------------------------------

_WORKER: Dict[str, Any] = {}


def _init_worker(tokenizer_dir: str, text_key: str, append_eos: bool) -> None:
    tok = tokenizer_from_dir(tokenizer_dir)
    _WORKER.update(tokenizer=tok, text_key=text_key, append_eos=append_eos)


def _json_text(path: str, lineno: int, line: str, key: str) -> str:
    try:
        obj = json.loads(line)
    except ValueError as e:
        where = f"{getattr(e, 'msg', e)}, column {getattr(e, 'colno', '?')}"
        raise DataError(f"{path}:{lineno}: invalid JSON ({where}); "
                        f"expected one {{\"{key}\": ...}} object per line") from None
    if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
        raise DataError(f"{path}:{lineno}: expected an object with a string '{key}' field")
    return obj[key]


def tokenize_chunk(chunk: Chunk) -> Result:
    fmt, path, items, _ = chunk
    tok: Tokenizer = _WORKER["tokenizer"]
    key, append_eos = _WORKER["text_key"], _WORKER["append_eos"]
    ids: List[int] = []
    sent_lens: List[int] = []
    doc_sents: List[int] = []
    for lineno, payload in items:
        if fmt == "jsonl":
            payload = [_json_text(path, lineno, payload, key)]
        elif fmt == "lines":
            payload = [payload]
        n_sent = 0
        for text in payload:
            piece = tok.encode(text)
            if piece:  # a sentence without tokens would only be an empty slot in the index
                ids.extend(piece)
                sent_lens.append(len(piece))
                n_sent += 1
        if n_sent:
            if append_eos:  # GPT-style document separator, counted in the last sentence
                ids.append(tok.eos_id)
                sent_lens[-1] += 1
            doc_sents.append(n_sent)
    dtype = token_dtype(tok.vocab_size)
    return (np.asarray(ids, dtype=np.int64).astype(dtype), np.asarray(sent_lens, dtype=np.int64),
            np.asarray(doc_sents, dtype=np.int64))


# --- writing -------------------------------------------------------------------------------------

class ShardWriter:
    """Appends documents to `shard-NNNNN` files in `directory`, starting a new shard at a document
    boundary once `max_tokens` is reached. Offsets are streamed to side files, not kept in memory."""

    def __init__(self, directory: str, *, dtype: np.dtype, max_tokens: int, header: Dict[str, Any]):
        self.directory, self.dtype, self.max_tokens, self.header = directory, dtype, max_tokens, header
        self.names: List[str] = []
        self.totals = collections.Counter()
        self._open = False

    def _start(self) -> None:
        name = f"shard-{len(self.names):05d}"
        self.names.append(name)
        base = os.path.join(self.directory, name)
        exts = (".bin", ".sent.tmp", ".doc.tmp")
        self._bin, self._sent, self._doc = (open(base + ext, "wb") for ext in exts)
        np.zeros(1, np.int64).tofile(self._sent)
        np.zeros(1, np.int64).tofile(self._doc)
        self._tokens = self._sentences = self._documents = 0
        self._open = True

    def _finish(self) -> None:
        base = os.path.join(self.directory, self.names[-1])
        for f in (self._bin, self._sent, self._doc):
            f.close()
        with open(base + ".idx", "wb") as out:
            for ext in (".sent.tmp", ".doc.tmp"):
                with open(base + ext, "rb") as f:
                    while block := f.read(1 << 20):
                        out.write(block)
                os.remove(base + ext)
        header = dict(self.header, dtype=self.dtype.name, num_tokens=self._tokens,
                      num_sentences=self._sentences, num_documents=self._documents)
        with open(base + ".json", "w", encoding="utf-8") as f:
            json.dump(header, f, indent=2)
        self.totals.update(tokens=self._tokens, sentences=self._sentences, documents=self._documents)
        self._open = False

    def write(self, tokens: np.ndarray, sent_lens: np.ndarray, doc_sents: np.ndarray) -> None:
        sent_start = np.concatenate([[0], np.cumsum(doc_sents)])  # first sentence of each document
        tok_start = np.concatenate([[0], np.cumsum(sent_lens)])  # first token of each sentence
        d = 0
        while d < len(doc_sents):
            if not self._open:
                self._start()
            room = self.max_tokens - self._tokens
            doc_end_tokens = tok_start[sent_start[d + 1:]] - tok_start[sent_start[d]]
            k = int(np.searchsorted(doc_end_tokens, room, side="right"))
            if k == 0:
                if self._documents:  # the next document does not fit: close this shard first
                    self._finish()
                    continue
                k = 1  # a document longer than a whole shard gets a shard of its own
            s0, s1 = sent_start[d], sent_start[d + k]
            tokens[tok_start[s0]:tok_start[s1]].tofile(self._bin)
            (self._tokens + tok_start[s0 + 1:s1 + 1] - tok_start[s0]).tofile(self._sent)
            (self._sentences + sent_start[d + 1:d + k + 1] - s0).tofile(self._doc)
            self._tokens += int(tok_start[s1] - tok_start[s0])
            self._sentences += int(s1 - s0)
            self._documents += k
            d += k

    def close(self) -> Dict[str, int]:
        if self._open or not self.names:  # an empty corpus still yields one (empty) shard
            if not self._open:
                self._start()
            self._finish()
        return dict(self.totals, shards=len(self.names))


def write_text_shards(files: Sequence[str], output: str, tokenizer: Tokenizer, *, fmt: str = "lines",
                      workers: int = 1, chunk_docs: int = 256, max_shard_tokens: int = 1 << 30,
                      append_eos: bool = False, text_key: str = "text", overwrite: bool = False,
                      progress: bool = True) -> Dict[str, int]:
    """Tokenize `files` into shards under the directory `output`; return the totals written."""
    from tqdm import tqdm

    if fmt not in FORMATS:
        raise DataError(f"unknown text format '{fmt}' (valid: {', '.join(FORMATS)})")
    if append_eos and tokenizer.eos_id is None:
        raise DataError("append_eos needs a tokenizer with an end-of-sequence id; this one has none")
    if os.path.exists(output) and not overwrite:
        raise DataError(f"{output}: output already exists; choose another path or pass --overwrite")
    total_bytes = 0
    for path in files:
        if not os.path.isfile(path):
            raise DataError(f"{path}: input file not found")
        total_bytes += os.path.getsize(path)
    with atomic_dir(output, overwrite=overwrite) as tmp:
        tok_dir = os.path.join(tmp, "tokenizer")
        tokenizer.save(tok_dir)
        with open(os.path.join(tok_dir, "m3i_tokenizer.json"), encoding="utf-8") as f:
            tok_cfg = json.load(f)
        header = {"format": "m3i_token_shard", "version": SHARD_VERSION, "source_format": fmt,
                  "tokenizer": tok_cfg, "vocab_size": tokenizer.vocab_size, "append_eos": append_eos,
                  "tokenizer_fingerprint": fingerprint(tokenizer),
                  "idx_layout": "int64 sentence token offsets (num_sentences+1), "
                                "then int64 document sentence offsets (num_documents+1)"}
        writer = ShardWriter(tmp, dtype=token_dtype(tokenizer.vocab_size), max_tokens=max_shard_tokens,
                             header=header)
        chunks = read_chunks(files, fmt, chunk_docs)
        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenize", disable=not progress)
        with bar:
            if workers <= 1:
                _init_worker(tok_dir, text_key, append_eos)
                for chunk in chunks:
                    writer.write(*tokenize_chunk(chunk))
                    bar.update(chunk[3])
            else:
                _run_pool(chunks, writer, bar, workers, (tok_dir, text_key, append_eos))
        totals = writer.close()
        if not totals["tokens"]:  # raised inside atomic_dir: the output is not created
            raise DataError(f"{', '.join(files)}: the corpus holds no text (no document with any, read as "
                            f"{fmt}); nothing was written")
        return totals


def _run_pool(chunks: Iterator[Chunk], writer: ShardWriter, bar, workers: int, init_args: tuple) -> None:
    # Pool.imap would drain the whole input iterator ahead of the workers; a bounded queue of pending
    # results keeps memory flat and the output in input order.
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    pending: collections.deque = collections.deque()
    with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        for chunk in chunks:
            pending.append((pool.apply_async(tokenize_chunk, (chunk,)), chunk[3]))
            if len(pending) >= 2 * workers:
                _drain_one(pending, writer, bar)
        while pending:
            _drain_one(pending, writer, bar)


def _drain_one(pending: collections.deque, writer: ShardWriter, bar) -> None:
    result, nbytes = pending.popleft()
    writer.write(*result.get())
    bar.update(nbytes)
