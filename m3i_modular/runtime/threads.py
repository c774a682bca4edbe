"""Process-wide settings a run starts with: torch's thread count and the attention (SDPA) backends.

Threads. torch computes with one thread per core by default, but the DataLoader's workers and the other ranks
on the same machine compete for those cores: on 2 cores with one loader worker, 2 compute threads ran 40 steps
in 69 s against 16 s with 1 (oversubscription). A run therefore computes with

    train.threads, when set (> 0);
    else OMP_NUM_THREADS, when the user exported it;
    else max(1, cores available to this process / ranks on this machine - loader workers per rank),

and says so once at start. `cores available` is the CPU affinity mask (what a container or `taskset` grants),
not the machine's count.

SDPA backends. `train.sdpa_backend` "auto" leaves torch's choice (flash, then memory-efficient, then cuDNN, then
the math fallback, whichever fits the inputs); a name pins that one kernel for the whole process (an input it
cannot take is then an error, not a silent fallback), which is how the backends are compared.
"""
import os
from typing import Optional

import torch

SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")


def cores_available() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def plan_threads(*, requested: int = 0, workers: int = 0, ranks_here: int = 1,
                 cores: Optional[int] = None, env: Optional[dict] = None) -> tuple:
    """(threads, why) for one rank."""
    env = os.environ if env is None else env
    cores = cores or cores_available()
    if requested > 0:
        return requested, "train.threads"
    omp = env.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    per_rank = max(1, cores // max(ranks_here, 1))
    threads = max(1, per_rank - workers)
    return threads, (f"{cores} cores available / {ranks_here} rank(s) on this machine - {workers} loader "
                     f"worker(s); set train.threads to override")


def set_sdpa_backend(name: str = "auto") -> None:
    """Enable only the named scaled_dot_product_attention kernel ("auto": all of them, torch's choice)."""
    if name != "auto" and name not in SDPA_BACKENDS:
        raise ValueError(f"sdpa_backend must be auto or one of {', '.join(SDPA_BACKENDS)}, got {name!r}")
    on = {b: name in ("auto", b) for b in SDPA_BACKENDS}
    torch.backends.cuda.enable_flash_sdp(on["flash"])
    torch.backends.cuda.enable_mem_efficient_sdp(on["efficient"])
    torch.backends.cuda.enable_math_sdp(on["math"])
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(on["cudnn"])


def apply(train, *, ranks_here: Optional[int] = None) -> str:
    """Set threads and SDPA backends for a run (train: sections.TrainConfig). Returns the start-up line that
    says how many threads and why (the caller prints it with the run's other start-up lines)."""
    ranks_here = ranks_here or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads, why = plan_threads(requested=getattr(train, "threads", 0), workers=train.num_workers,
                                ranks_here=ranks_here)
    torch.set_num_threads(threads)
    set_sdpa_backend(getattr(train, "sdpa_backend", "auto"))
    return f"threads: {threads} per rank ({why})"
