#!/usr/bin/env python
"""Hugging Face BERT directory <-> our checkpoint.

    python scripts/convert_hf_bert.py to-ours --input bert-base-uncased/ --output ckpt/bert_base
    python scripts/convert_hf_bert.py to-hf   --input ckpt/bert_base --output hf/bert_base
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from m3i_modular.convert.hf_bert import hf_to_ours, ours_to_hf  # noqa: E402
from m3i_modular.errors import entry_point  # noqa: E402


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("direction", choices=["to-ours", "to-hf"])
    p.add_argument("--input", required=True, help="HF directory (to-ours) or our checkpoint / run (to-hf)")
    p.add_argument("--output", required=True, help="our checkpoint root (to-ours) or a new HF directory (to-hf)")
    args = p.parse_args(argv)
    path = hf_to_ours(args.input, args.output) if args.direction == "to-ours" else ours_to_hf(args.input,
                                                                                             args.output)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
