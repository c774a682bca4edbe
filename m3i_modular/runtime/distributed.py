"""torchrun environment: one process, or DDP over gloo (CPU) / nccl (GPU)."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", **_attempt_store(rank, world))
    return DistEnv(rank=rank, world=world, local_rank=local, device=dev)


def _attempt_store(rank: int, world: int) -> dict:
    """Under torchrun's c10d rendezvous the agent's TCP store outlives a restart, and the workers use it without
    a per-attempt prefix: a restarted rank can read the dead attempt's gloo address ("Connection refused").
    The keys are put under the restart count here; otherwise ({}) init_process_group reads env:// itself."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        return {}
    from datetime import timedelta
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size=world,
                          is_master=False, timeout=timedelta(minutes=30))
    prefix = f"m3i/attempt_{os.environ['TORCHELASTIC_RESTART_COUNT']}"
    return {"store": dist.PrefixStore(prefix, store), "rank": rank, "world_size": world}


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_mean(values: dict) -> dict:
    """Average scalar tensors over ranks (for logging)."""
    if not values:
        return {}
    keys = sorted(values)
    t = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def gather_bytes(t: torch.Tensor) -> list:
    """Every rank's uint8 tensor (same length), e.g. RNG states for a checkpoint."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [t]
    home = t.device
    if dist.get_backend() == "nccl":  # nccl gathers CUDA tensors only (the RNG states live on the CPU)
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [o.to(home) for o in out]


# The final barrier's work handle, kept until interpreter exit (see cleanup).
_FINAL_BARRIER: list = []


def cleanup() -> None:
    """Leave the process group after a barrier (a rank that leaves while a peer still talks aborts the peer).

    The barrier's work handle is kept: the barrier holds the collectives still in flight when it was issued
    (their Python-owned tensors). If a gloo worker thread dropped the last reference, it would need the GIL to
    free those tensors, and at interpreter shutdown a thread that asks for the GIL is killed mid-destructor:
    std::terminate, SIGABRT after a finished run. Kept here, they are freed by the main thread at exit.
    (destroy_process_group does not join gloo's threads once a DDP wrapper was built on the group.)"""
    if dist.is_available() and dist.is_initialized():
        work = dist.barrier(async_op=True)
        work.wait()
        _FINAL_BARRIER.append(work)
        dist.destroy_process_group()
