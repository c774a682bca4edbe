"""Peak FLOP/s of the device a run uses, for MFU (model FLOPs utilisation = achieved model FLOP/s / peak).

GPUs: dense (no sparsity) tensor-core peaks from the vendors' data sheets, by device name and precision. fp32
on a GPU is the plain fp32 peak unless TF32 matmuls are enabled (torch's default is off), then the TF32 peak.
CPUs: an ESTIMATE, cores x SIMD lanes x 2 (a fused multiply-add is two FLOPs) x FMA pipes x clock, read from
/proc/cpuinfo; the label says so. bf16 doubles the fp32 rate where the CPU has a bf16 dot-product instruction
(avx512_bf16) and is 16x a core's fp32 AVX-512 rate with AMX tiles (amx_bf16); without either, bf16 runs
through fp32 units (often slower than fp32, since it converts) and its peak is the fp32 one.
"""
import os
import re
from dataclasses import dataclass
from typing import Optional

import torch

# (substring of torch.cuda.get_device_name(), {precision: TFLOP/s}); the first match wins: specific first
GPU_PEAKS = (
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),      # SXM5 (HBM3)
    ("H200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H800", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("GH200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("B200", {"bf16": 2250.0, "fp16": 2250.0, "tf32": 1100.0, "fp32": 80.0}),
    ("A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("A800", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.1, "fp16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    ("L40", {"bf16": 181.0, "fp16": 181.0, "tf32": 90.5, "fp32": 90.5}),
    ("L4", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("A10G", {"bf16": 70.0, "fp16": 70.0, "tf32": 35.0, "fp32": 31.2}),
    ("A10", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    ("RTX 4090", {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    ("RTX 3090", {"bf16": 71.0, "fp16": 71.0, "tf32": 35.6, "fp32": 35.6}),
    ("V100", {"fp16": 125.0, "fp32": 15.7}),
    ("T4", {"fp16": 65.0, "fp32": 8.1}),
)


@dataclass
class Peak:
    flops: Optional[float]   # FLOP/s of one device (one process); None: unknown
    label: str               # where the figure comes from ("estimate" for CPUs)


def gpu_peak(name: str, precision: str, tf32: bool = False) -> Peak:
    key = "tf32" if precision == "fp32" and tf32 else precision
    for pattern, table in GPU_PEAKS:
        if pattern in name:
            if key in table:
                return Peak(table[key] * 1e12, f"{name} {key} dense peak (data sheet)")
            return Peak(None, f"{name} has no {key} tensor peak in m3i_modular/peaks.py")
    return Peak(None, f"unknown GPU '{name}': add it to m3i_modular/peaks.py GPU_PEAKS")


def _cpuinfo() -> dict:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    out = {}
    for line in first.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def _max_clock_hz(info: dict) -> tuple:
    """(Hz, how it was read): the maximum (boost) clock where the OS exposes it, else the current one that
    /proc/cpuinfo reports -- in a VM often the base clock, so a boosting CPU's MFU reads high."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return float(f.read()) * 1e3, "max clock"
    except (OSError, ValueError):
        pass
    mhz = info.get("cpu MHz")
    return (float(mhz) * 1e6, "reported clock, boost not known") if mhz else (None, "")


def cpu_flops_per_cycle(info: dict, precision: str) -> tuple:
    """(FLOPs per cycle per core, description) from the ISA flags. Datapath: AMD Zen 4 (family 25) runs
    AVX-512 on 256-bit pipes; Zen 5 (family 26) and Intel AVX-512 parts have 512-bit ones. Two FMA pipes."""
    flags = set(info.get("flags", "").split())
    amd = info.get("vendor_id") == "AuthenticAMD"
    family = int(info.get("cpu family", "0") or 0)
    if "avx512f" in flags:
        width = 256 if amd and family < 26 else 512
        isa = "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        width, isa = 256, "AVX2+FMA"
    elif "avx" in flags:
        width, isa = 256, "AVX (no FMA)"
    else:
        width, isa = 128, "128-bit SIMD"
    fma = 1 if isa == "AVX (no FMA)" else 2      # without FMA: one multiply and one add pipe
    per_cycle = 2 * (width // 32) * fma          # fp32: FMA pipes x lanes x 2 FLOPs
    desc = f"{isa}, {width}-bit datapath x {fma} FMA pipes"
    if precision in ("bf16", "fp16"):
        if "amx_bf16" in flags and precision == "bf16" or "amx_fp16" in flags and precision == "fp16":
            return 1024, f"AMX {precision} tiles"
        if precision == "bf16" and "avx512_bf16" in flags or precision == "fp16" and "avx512_fp16" in flags:
            return per_cycle * 2, desc + f", {precision} dot products"
        return per_cycle, desc + f", {precision} through fp32 units"
    return per_cycle, desc


def cpu_peak(precision: str, threads: Optional[int] = None) -> Peak:
    """cores (the threads torch computes with) x FLOPs per cycle x clock: an estimate."""
    info = _cpuinfo()
    cores = threads or torch.get_num_threads()
    clock, how = _max_clock_hz(info)
    per_cycle, desc = cpu_flops_per_cycle(info, precision)
    if clock is None:
        return Peak(None, "CPU clock unknown: no peak")
    name = re.sub(r"\s+", " ", info.get("model name", "CPU"))
    return Peak(cores * per_cycle * clock,
                f"estimate: {name}, {cores} cores x {per_cycle} {precision} FLOP/cycle ({desc}) x "
                f"{clock / 1e9:.2f} GHz ({how})")


def device_peak(device: torch.device, precision: str) -> Peak:
    """The peak of one process's device at the run's precision."""
    if device.type == "cuda":
        tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"
        return gpu_peak(torch.cuda.get_device_name(device), precision, tf32=tf32)
    if device.type == "cpu":
        return cpu_peak(precision)
    return Peak(None, f"no peak table for device type {device.type}")


def describe_cpu() -> str:
    """One line naming this machine's CPU (benchmark CSVs)."""
    info = _cpuinfo()
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{info.get('model name', 'CPU')} ({n} cores available)"
