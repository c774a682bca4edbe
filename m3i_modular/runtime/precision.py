"""`train.precision: "auto"`: bf16 where the device computes it natively, fp32 elsewhere.

bf16 autocast on a CPU without bf16 units is emulated (every matmul converts to and from fp32), which made a
CPU recipe about 4x slower than fp32 on a 2-core AVX2 machine. Native bf16: a CUDA device that reports it
(compute capability 8.0+), or a CPU with AMX (amx_bf16) in its flags. AVX512-BF16 alone is not enough: on an
AMD EPYC with avx512_bf16 and no AMX, m3i_vit (width 64) took 0.43 CPU s per step in bf16 against 0.31 in fp32
(single thread), because at small widths the autocast conversions cost more than the bf16 dot products save.
An explicit "fp32", "bf16" or "fp16" is used as given.

The CPU's flags come from /proc/cpuinfo; `M3I_CPU_FLAGS` (space-separated) replaces them, so the choice can be
exercised on any machine (tests) or forced where /proc/cpuinfo is absent.
"""
import os
from typing import Iterable, Optional, Set, Tuple

BF16_CPU_FLAGS = ("amx_bf16",)


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Set[str]:
    """The flags of the first CPU listed (`flags` on x86, `Features` on ARM); empty when unreadable."""
    env = os.environ.get("M3I_CPU_FLAGS")
    if env is not None:
        return set(env.split())
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def resolve_precision(requested: str, device_type: str, *, flags: Optional[Iterable[str]] = None,
                      cuda_bf16: Optional[bool] = None, cuda_name: str = "") -> Tuple[str, str]:
    """(precision, reason). `flags` / `cuda_bf16` default to what this machine reports."""
    if requested != "auto":
        return requested, "set in the recipe"
    if device_type == "cuda":
        if cuda_bf16 is None:
            import torch
            cuda_bf16 = torch.cuda.is_bf16_supported()
            cuda_name = cuda_name or torch.cuda.get_device_name()
        gpu = cuda_name or "this GPU"
        if cuda_bf16:
            return "bf16", f"auto: {gpu} computes bf16 natively"
        return "fp32", f"auto: {gpu} has no native bf16"
    have = set(cpu_flags() if flags is None else flags)
    native = [f for f in BF16_CPU_FLAGS if f in have]
    if native:
        return "bf16", f"auto: this CPU computes bf16 natively ({', '.join(native)})"
    if "avx512_bf16" in have:
        return "fp32", ("auto: this CPU has AVX512-BF16 but no AMX, where bf16 autocast measured slower than fp32 "
                        "at the CPU recipes' sizes")
    return "fp32", ("auto: this CPU has no bf16 units (no AMX), where bf16 would be emulated and several times "
                    "slower")
