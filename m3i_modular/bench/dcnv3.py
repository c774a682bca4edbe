"""Forward+backward time and peak memory of the DCNv3 CUDA kernel vs the PyTorch reference, at InternImage-T
stage shapes, as ratios measured in the same run.

    python scripts/benchmark.py dcnv3 [--batch 32] [--dtype bf16] [--repeats 20]
Needs a CUDA GPU (exits 2 with one line without one). Builds the op on first use unless already built.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from ..ops.dcnv3 import dcnv3, dcnv3_reference
from ..ops.loader import OpBuildError

STAGES = [(64, 4, 56), (128, 8, 28), (256, 16, 14), (512, 32, 7)]  # channels, groups, pixels (InternImage-T)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def make(batch, channels, group, size, dtype):
    x = torch.randn(batch, size, size, channels, device="cuda", dtype=dtype, requires_grad=True)
    off = (torch.randn(batch, size, size, group * 18, device="cuda") * 2).to(dtype).requires_grad_()
    mask = torch.randn(batch, size, size, group, 9, device="cuda").softmax(-1).flatten(3).to(dtype)
    mask.requires_grad_()
    return x, off, mask


def measure(fn, inputs, repeats):
    """Median fwd+bwd milliseconds (CUDA events) and peak extra memory in MiB."""
    grad = None
    for _ in range(3):  # warm-up: op load/build, allocator caching, first-launch costs
        out = fn(*inputs)
        grad = torch.randn_like(out) if grad is None else grad
        out.backward(grad)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*inputs).backward(grad)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    for t in inputs:
        t.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn(*inputs).backward(grad)
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return statistics.median(times), peak


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: the dcnv3 benchmark needs a CUDA GPU; none is visible", file=sys.stderr)
        return 2
    if args.batch < 1 or args.repeats < 1:
        print("error: --batch and --repeats must be >= 1", file=sys.stderr)
        return 2
    dtype = DTYPES[args.dtype]
    conv = (3, 3, 1, 1, 1, 1, 1, 1)
    print(f"{torch.cuda.get_device_name()}  batch {args.batch}  {args.dtype}  (fwd+bwd, median of {args.repeats})")
    print(f"{'C':>4} {'G':>3} {'px':>3} | {'kernel ms':>9} {'ref ms':>8} {'speedup':>7} | "
          f"{'kernel MiB':>10} {'ref MiB':>8} {'mem ratio':>9}")
    for channels, group, size in STAGES:
        inputs = make(args.batch, channels, group, size, dtype)
        gc = channels // group

        def kernel(x, o, m):
            return dcnv3(x, o, m, *conv, group, gc, 1.0, use_kernel=True)

        def reference(x, o, m):
            return dcnv3_reference(x, o, m, *conv, group, gc, 1.0)

        try:
            k_ms, k_mib = measure(kernel, inputs, args.repeats)
        except OpBuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        r_ms, r_mib = measure(reference, inputs, args.repeats)
        print(f"{channels:>4} {group:>3} {size:>3} | {k_ms:>9.3f} {r_ms:>8.3f} {r_ms / k_ms:>6.2f}x | "
              f"{k_mib:>10.1f} {r_mib:>8.1f} {r_mib / max(k_mib, 1e-6):>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
