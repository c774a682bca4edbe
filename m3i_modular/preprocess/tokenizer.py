"""`preprocess.py tokenizer`: train a tokenizer on text files into a directory `--tokenizer` accepts."""
from __future__ import annotations

import os
import re

from ..errors import DataError
from ..runtime.atomic import atomic_dir
from ..data.tokenizers import CharTokenizer, SentencePieceTokenizer, train_sentencepiece


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="train a sentencepiece (or char) tokenizer on text files",
                              description="Train a tokenizer; the output directory holds its files and "
                                          "m3i_tokenizer.json, and is what `text --tokenizer` expects.")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help="plain text, one sentence a line")
    p.add_argument("--output", required=True, metavar="DIR", help="directory to create")
    p.add_argument("--type", default="sentencepiece", choices=["sentencepiece", "char"])
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"],
                   help="sentencepiece algorithm")
    p.add_argument("--character-coverage", type=float, default=1.0,
                   help="sentencepiece: share of characters kept (0.9995 for large CJK corpora)")
    p.add_argument("--input-sentence-size", type=int, default=0,
                   help="sentencepiece: train on this many sampled lines (0 = all)")
    p.add_argument("--soft-vocab-limit", action="store_true",
                   help="sentencepiece: allow a smaller vocabulary when the corpus is too small")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--min-count", type=int, default=1, help="char: drop rarer characters")
    p.add_argument("--lowercase", action="store_true", help="char: lower-case the text")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(run=run)


def run(args) -> None:
    if os.path.exists(args.output) and not args.overwrite:
        raise DataError(f"{args.output}: output already exists; choose another path or pass --overwrite")
    for path in args.input:
        if not os.path.isfile(path):
            raise DataError(f"{path}: input file not found")
    check_corpus(args.input)
    with atomic_dir(args.output, overwrite=args.overwrite) as tmp:
        if args.type == "char":
            tok = CharTokenizer(corpus=list(args.input), min_count=args.min_count,
                                max_size=args.vocab_size, lowercase=args.lowercase)
        else:
            try:
                model, _ = train_sentencepiece(args.input, os.path.join(tmp, "spm"), args.vocab_size,
                                               args.model_type, character_coverage=args.character_coverage,
                                               input_sentence_size=args.input_sentence_size,
                                               hard_vocab_limit=not args.soft_vocab_limit,
                                               num_threads=args.threads)
            except DataError as e:
                m = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", str(e))
                if m is None:
                    raise
                raise DataError(f"the corpus yields at most {m.group(2)} pieces for a {args.model_type} model, "
                                f"--vocab-size is {m.group(1)}: lower it, or pass --soft-vocab-limit") from None
            tok = SentencePieceTokenizer(model=model)
        tok.save(tmp)
    print(f"wrote a {args.type} tokenizer with {tok.vocab_size} tokens to {args.output}")


def check_corpus(paths) -> None:
    """Tokenizers train on UTF-8 text: a line that is not UTF-8 is one error naming the file and line (the
    trainers would report a misleading vocabulary size, or fail with a traceback); so is a corpus without
    text. Reads the corpus once."""
    nonblank = 0
    for path in paths:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                    f"convert the corpus first, e.g. iconv -f latin1 -t utf-8") from None
                nonblank += bool(line.strip())
    if not nonblank:
        raise DataError(f"{', '.join(paths)}: the corpus holds no text (every line is blank)")
