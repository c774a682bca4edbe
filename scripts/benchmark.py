#!/usr/bin/env python
"""The project's benchmarks behind one command. Each reports its figures as ratios against a reference measured
in the same run (never as absolute targets), so numbers from different machines are comparable.

    python scripts/benchmark.py --list
    python scripts/benchmark.py data --config models/mae_vit.json --workers 0 1 2
    python scripts/benchmark.py dcnv3 --dtype bf16
    python scripts/benchmark.py text-memory --workdir /tmp/pp_bench
    python scripts/benchmark.py vit                       # ViT-S/16 vs timm, batch 16, fp32
    python scripts/benchmark.py bert --tencentpretrain /path/to/TencentPretrain
    python scripts/benchmark.py m3i --device cuda --precision bf16

Everything after the benchmark's name goes to that benchmark (`python scripts/benchmark.py NAME --help`).
The benchmarks are the modules of m3i_modular/bench/.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

# name -> (module of m3i_modular.bench, what it measures against what)
BENCHMARKS: Dict[str, Tuple[str, str]] = {
    "data": ("data", "a recipe's loader samples/s with N workers vs the samples/s its training step consumes"),
    "dcnv3": ("dcnv3",
              "DCNv3 CUDA kernel vs the PyTorch reference: fwd+bwd time and peak memory (needs a CUDA GPU)"),
    "text-memory": ("text_memory",
                    "peak memory of `preprocess.py text` on a 500 MB vs a 50 MB corpus (streaming check)"),
    "vit": ("vit", "our ViT training step vs timm's VisionTransformer of the same shape: img/s"),
    "bert": ("bert",
             "our BERT MLM step vs TencentPretrain's own model and optimizer (--tencentpretrain PATH): tokens/s"),
    "m3i": ("m3i", "M3I's training time per FLOP vs MAE's on the same tower"),
}


def _listing() -> str:
    width = max(map(len, BENCHMARKS))
    return "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in BENCHMARKS.items())


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("--list", "-h", "--help"):
        print(f"usage: scripts/benchmark.py NAME [ARGS...]\n\nbenchmarks:\n{_listing()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        print(f"error: unknown benchmark '{name}'; choose one of {', '.join(BENCHMARKS)} "
              f"(python scripts/benchmark.py --list)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"m3i_modular.bench.{BENCHMARKS[name][0]}")
    saved, sys.argv = sys.argv, [f"scripts/benchmark.py {name}"]  # argparse's usage names what the user typed
    try:
        return int(module.main(rest) or 0)
    finally:
        sys.argv = saved


if __name__ == "__main__":
    sys.exit(main())
