#!/usr/bin/env python
"""Write synthetic_shapes captions, one a line, for training the recipes' small tokenizer:

    python scripts/shapes_captions.py --num 4000 --output /tmp/shapes_captions.txt
    python preprocess.py tokenizer --input /tmp/shapes_captions.txt --output /tmp/shapes_sp \\
        --vocab-size 200 --soft-vocab-limit --threads 1
    cp /tmp/shapes_sp/spm.model models/assets/shapes_sp.model
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from m3i_modular.runtime.atomic import atomic_write_bytes  # noqa: E402
from m3i_modular.data.sources.synthetic_shapes import SyntheticShapes  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=4000)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--output", required=True)
    args = p.parse_args()
    src = SyntheticShapes(num_samples=args.num, image_size=args.image_size)
    lines = [src[i]["caption"] for i in range(args.num)]
    atomic_write_bytes(args.output, ("\n".join(lines) + "\n").encode())
    print(f"wrote {len(lines)} captions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
