"""Collapse monitors, cheap enough to compute on every training batch: the spread of the targets across
the batch and the effective rank of the predictions. A collapsing run shows up here before its loss does
(a constant target makes regression trivially easy).

No device sync but the eigenvalue solver's own (torch checks its status on the host): the valid rows are
weighted, not gathered, so every shape follows from the input's shape alone."""
import torch

MAX_ROWS = 2048  # the rank of a D-dim cloud needs only a few thousand rows; bounds the cost per step


def _linspace_index(n: torch.Tensor, steps: int) -> torch.Tensor:
    """torch.linspace(0, n - 1, steps).long() for a count n held on the device (torch's own formula)."""
    end = (n - 1).float()
    step = end / (steps - 1)
    i = torch.arange(steps, device=n.device, dtype=torch.float32)
    return torch.where(i < steps // 2, step * i, end - step * (steps - 1 - i)).long()


def _rows(x: torch.Tensor, valid=None):
    """(rows (M, D), weights (M,)): the valid rows of x (..., D) -- at most MAX_ROWS of them, evenly strided,
    so the subsample is deterministic -- and 1.0 where a row counts, 0.0 where it only pads."""
    x = x.detach().float().reshape(-1, x.shape[-1])
    n_all = x.shape[0]
    if valid is None:
        if n_all > MAX_ROWS:
            x = x[torch.linspace(0, n_all - 1, MAX_ROWS, device=x.device).long()]
        return x, torch.ones(x.shape[0], device=x.device)
    v = valid.reshape(-1).to(torch.bool)
    if n_all <= MAX_ROWS:
        return x, v.float()
    order = torch.argsort((~v).to(torch.uint8), stable=True)  # the valid rows first, in order
    n = v.sum()
    i = torch.arange(MAX_ROWS, device=x.device)
    idx = torch.where(n > MAX_ROWS, _linspace_index(n, MAX_ROWS), i)
    return x[order[idx]], ((n > MAX_ROWS) | (i < n)).float()


@torch.no_grad()
def effective_rank(x: torch.Tensor, valid=None) -> torch.Tensor:
    """exp(entropy of the normalised singular values) of the rows of x (..., D), RankMe-style (Garrido et
    al. 2023): 1 for a rank-one matrix, n for n orthogonal rows of equal norm; 0 for no rows or only zeros.
    Rows are not centred."""
    x, w = _rows(x, valid)
    if x.shape[0] == 0:
        return torch.zeros((), device=x.device)
    # singular values from the eigenvalues of the smaller Gram matrix: O(N D min(N, D)), no full SVD;
    # float64 because squaring then rooting turns float32 round-off of zero eigenvalues into rank
    x = x.double() * w.double()[:, None]
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    finite = torch.isfinite(gram).all()  # a non-finite step (skipped by the trainer) reports NaN, not a crash
    sv = torch.linalg.eigvalsh(torch.where(finite, gram, torch.zeros_like(gram))).clamp(min=0).sqrt()
    total = sv.sum()
    p = sv / torch.where(total > 0, total, torch.ones_like(total))
    rank = torch.special.entr(p).sum().exp().float()
    rank = torch.where(total > 0, rank, torch.zeros_like(rank))
    return torch.where(finite, rank, torch.full_like(rank, float("nan")))


@torch.no_grad()
def batch_std(x: torch.Tensor, valid=None) -> torch.Tensor:
    """Standard deviation of x (..., D) across the (valid) rows of the batch, averaged over the D features."""
    x, w = _rows(x, valid)
    n = w.sum().clamp(min=1.0)
    mean = (x * w[:, None]).sum(0) / n
    std = (((x - mean) ** 2 * w[:, None]).sum(0) / n).sqrt().mean()
    return torch.where(w.sum() >= 2, std, torch.zeros_like(std))
