"""Shared by the side-by-side benchmarks (vit.py, bert.py, m3i.py): contestants
timed in one process, alternating (the order reversed every round, so drift and a neighbour's load fall on all
of them alike), medians, and one CSV row per contestant under results/.

A contestant is a name and a zero-argument callable running one training step to completion (the device is
synchronised inside the timing)."""
from __future__ import annotations

import csv
import datetime
import os
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

# the checkout: recipes in models/, and results/ for relative CSV paths
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_timing_args(p, *, repeats: int, warmup: int, variant_help: str = "also time with these overrides (a lever)"):
    """The options every step benchmark shares: precision, device, threads, timed and warm-up steps, variants."""
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--repeats", type=int, default=repeats, help="timed steps per contestant")
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]", help=variant_help)


def timing_device(a) -> torch.device:
    """Apply --threads (0: torch's default) and return --device."""
    if a.threads:
        torch.set_num_threads(a.threads)
    return torch.device(a.device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(contestants: Dict[str, Callable[[], None]], *, repeats: int, warmup: int,
              device: torch.device) -> Dict[str, List[float]]:
    """Seconds per call of each contestant: `warmup` untimed calls each, then `repeats` rounds."""
    for fn in contestants.values():
        for _ in range(warmup):
            fn()
        sync(device)
    times: Dict[str, List[float]] = {name: [] for name in contestants}
    order = list(contestants)
    for r in range(repeats):
        for name in (order if r % 2 == 0 else order[::-1]):
            sync(device)
            t0 = time.perf_counter()
            contestants[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def with_runtime(step: Callable[[], None], train) -> Callable[[], None]:
    """`step` under the process-wide settings a contestant's TrainConfig asks for (train.threads,
    train.sdpa_backend), set around each call so that contestants with different settings can alternate.
    The result carries `.precision` (its peak for MFU)."""
    threads, backend = getattr(train, "threads", 0), getattr(train, "sdpa_backend", "auto")
    if not threads and backend == "auto":
        def plain() -> None:
            step()
        plain.precision = train.precision
        return plain
    from torch.nn.attention import SDPBackend, sdpa_kernel
    kinds = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
             "math": SDPBackend.MATH, "cudnn": SDPBackend.CUDNN_ATTENTION}

    def wrapped() -> None:
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            if backend == "auto":
                step()
            else:
                with sdpa_kernel([kinds[backend]]):
                    step()
        finally:
            torch.set_num_threads(before)
    wrapped.precision = train.precision
    return wrapped


def peaks(contestants: Dict[str, Callable[[], None]], device: torch.device, precision: str) -> Dict[str, float]:
    """Each contestant's peak FLOP/s at its own precision (a bf16 variant of an fp32 run is measured
    against the bf16 peak)."""
    from ..runtime.peaks import device_peak
    return {n: device_peak(device, getattr(f, "precision", precision)).flops for n, f in contestants.items()}


def median(xs: List[float]) -> float:
    return statistics.median(xs)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from ..runtime.peaks import describe_cpu
    return describe_cpu()


def autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def write_csv(path: str, rows: List[dict]) -> str:
    """Append `rows` to the CSV at `path` (relative paths under the repository), header on creation."""
    path = path if os.path.isabs(path) else os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fields = ["date", "benchmark", "machine", "device", "precision", "threads", "torch", "contestant", "unit",
              "median", "ratio_vs_reference", "median_s_per_step", "flops_per_step", "flops_per_s", "mfu",
              "repeats", "command", "notes"]
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        for row in rows:
            w.writerow(row)
    return path


def report(benchmark: str, times: Dict[str, List[float]], *, reference: str, per_step, unit: str,
           device: torch.device, precision: str, csv_path: Optional[str], command: str,
           flops: Optional[Dict[str, float]] = None, peak=None,
           notes: Optional[Dict[str, str]] = None) -> List[dict]:
    """Print a table and append it to the CSV: throughput = per_step / median seconds; ratio = the median over
    rounds of (reference seconds / contestant seconds) in the same round -- steps timed next to each other, so
    a neighbour's load that changes over seconds cancels out. `per_step`: the work of one step (samples,
    tokens), or {contestant: work} when it differs. `flops`: FLOPs per step of each contestant."""
    work = per_step if isinstance(per_step, dict) else {name: per_step for name in times}
    peaks = peak if isinstance(peak, dict) else {name: peak for name in times}
    rows = []
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"{benchmark}: {machine(device)}, {precision}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, {len(times[reference])} rounds of alternating steps; ratio: median of per-round "
          f"ratios")
    for name, ts in times.items():
        m = median(ts)
        rate = work[name] / m
        ratio = median([(work[name] / t) / (work[reference] / r) for r, t in zip(times[reference], ts)])
        row = {"date": stamp, "benchmark": benchmark, "machine": machine(device), "device": device.type,
               "precision": precision, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "contestant": name, "unit": unit, "median": round(rate, 3),
               "ratio_vs_reference": round(ratio, 4), "median_s_per_step": round(m, 5),
               "repeats": len(ts), "command": command, "notes": (notes or {}).get(name, "")}
        line = f"  {name:<28s} {rate:12.2f} {unit}   {ratio:6.3f}x {reference}   ({m * 1e3:.1f} ms/step)"
        if flops and name in flops:
            achieved = flops[name] / m
            row.update(flops_per_step=f"{flops[name]:.4e}", flops_per_s=f"{achieved:.4e}")
            line += f"   {achieved / 1e9:.1f} GFLOP/s"
            if peaks.get(name):
                row["mfu"] = round(achieved / peaks[name], 4)
                line += f"   MFU {100 * achieved / peaks[name]:.1f}%"
        print(line)
        rows.append(row)
    if csv_path:
        print(f"  -> {write_csv(csv_path, rows)}")
    return rows
