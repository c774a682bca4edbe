"""Build the package's custom CUDA ops ahead of time into the ops cache ($M3I_OPS_CACHE).

    CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST="8.0;9.0" MAX_JOBS=2 python scripts/build_ops.py [--op m3i_dcnv3]
Prints one line per op with the library path and build time; exits 2 with one line on failure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3i_modular.errors import entry_point  # noqa: E402
from m3i_modular.ops.builtin import known_ops  # noqa: E402
from m3i_modular.ops.loader import OpBuildError, build  # noqa: E402


@entry_point(errors=(OpBuildError,))
def main(argv=None) -> int:
    ops = known_ops()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", action="append", choices=sorted(ops), help="op to build (default: all)")
    parser.add_argument("--verbose", action="store_true", help="show compiler commands")
    args = parser.parse_args(argv)
    for name in args.op or sorted(ops):
        start = time.perf_counter()
        lib = build(ops[name], verbose=args.verbose)
        print(f"{name}: {lib} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
