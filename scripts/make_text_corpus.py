#!/usr/bin/env python
"""Write the embedded synthetic text corpus (corpus.txt + vocab.txt) for the mini BERT / GPT recipes:

    python scripts/make_text_corpus.py --output data/toy_text
    python preprocess.py text --input data/toy_text/corpus.txt --format bert \\
        --tokenizer data/toy_text/vocab.txt --output data/toy_text/bert_shards
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from m3i_modular.preprocess.synthetic_text import write_corpus  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="directory for corpus.txt and vocab.txt")
    p.add_argument("--documents", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    corpus, vocab = write_corpus(args.output, documents=args.documents, seed=args.seed)
    print(f"wrote {corpus} and {vocab}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
