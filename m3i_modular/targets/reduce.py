"""Averages over valid elements, normalised by the valid count summed over ranks, so that DDP's gradient
average over R ranks equals one process on the global batch, and a rank with no valid sample still
returns a zero that is connected to the graph."""
import torch
import torch.distributed as dist


def global_count(weights: torch.Tensor) -> torch.Tensor:
    """Sum of weights over the global batch (all ranks), as a float tensor without gradient."""
    count = weights.detach().float().sum()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        count = count.clone()
        dist.all_reduce(count)
        count = count / dist.get_world_size()  # DDP averages gradients: pre-scale to the per-rank share
    return count


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / (global count / world size); a zero connected to `values` when nothing is valid.

    No branch on the count (that would make the host wait for the device every step): with no valid element
    the weighted sum is 0 (each term is values * 0) and the clamped count keeps the division finite."""
    weights = weights.to(values.dtype)
    total = (values * weights).sum()
    count = global_count(weights)
    return total / count.clamp(min=1e-12)
