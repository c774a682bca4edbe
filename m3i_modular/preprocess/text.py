"""`preprocess.py text`: text corpora -> token-id shards (layout: data/sources/token_store.py)."""
from __future__ import annotations

import os

from .text_writer import FORMATS, write_text_shards
from ..data.tokenizers import tokenizer_from_path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("text", help="tokenize text corpora into token-id shards",
                              description="Tokenize text into memory-mapped token-id shards with a "
                                          "document/sentence index.")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE")
    p.add_argument("--format", default="lines", choices=FORMATS,
                   help="lines: a document per line; bert: a sentence per line, blank line between "
                        "documents; jsonl: one {\"text\": ...} object per line")
    p.add_argument("--tokenizer", required=True, metavar="PATH",
                   help="directory from `preprocess.py tokenizer`, a sentencepiece .model, a BERT vocab.txt "
                        "or a JSON tokenizer config")
    p.add_argument("--output", required=True, metavar="DIR", help="directory to create")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--chunk-docs", type=int, default=256, help="documents per unit of work")
    p.add_argument("--shard-tokens", type=int, default=1 << 30, help="start a new shard after this many")
    p.add_argument("--append-eos", action="store_true", help="end every document with the EOS id")
    p.add_argument("--text-key", default="text", help="jsonl: the field holding the text")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> None:
    tokenizer = tokenizer_from_path(args.tokenizer)
    totals = write_text_shards(args.input, args.output, tokenizer, fmt=args.format, workers=args.workers,
                               chunk_docs=max(1, args.chunk_docs), max_shard_tokens=max(1, args.shard_tokens),
                               append_eos=args.append_eos, text_key=args.text_key,
                               overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {totals['documents']} documents, {totals['sentences']} sentences, {totals['tokens']} "
          f"tokens in {totals['shards']} shard(s) to {args.output}")
