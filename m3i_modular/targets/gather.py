"""All-gather that keeps gradients: every rank's rows feed every rank's loss (InfoNCE negatives), so the
backward pass must return each rank the gradient that all ranks computed for its rows."""
import torch
import torch.distributed as dist


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world() > 1 else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(world())]
        dist.all_gather(parts, x.contiguous())
        ctx.n, ctx.rank = x.shape[0], rank()
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)          # sum of every rank's gradient w.r.t. the gathered rows
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_rows(x: torch.Tensor, *, grad: bool = True) -> torch.Tensor:
    """Concatenate the (equal-sized) row blocks of all ranks in rank order; identity on one process."""
    if world() == 1:
        return x
    if grad and x.requires_grad:
        return _GatherWithGrad.apply(x)
    y = x.detach().contiguous()
    y = y.to(torch.uint8) if y.dtype == torch.bool else y    # gloo has no bool all_gather
    parts = [torch.empty_like(y) for _ in range(world())]
    dist.all_gather(parts, y)
    return torch.cat(parts, 0).to(x.dtype)
