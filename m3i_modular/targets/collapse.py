"""Collapse monitors, cheap enough to compute on every training batch: the spread of the targets across
the batch and the effective rank of the predictions. A collapsing run shows up here before its loss does
(a constant target makes regression trivially easy)."""
import torch

MAX_ROWS = 2048  # the rank of a D-dim cloud needs only a few thousand rows; bounds the cost per step


def _rows(x: torch.Tensor, valid=None) -> torch.Tensor:
    x = x.detach().float().reshape(-1, x.shape[-1])
    if valid is not None:
        x = x[valid.reshape(-1).to(torch.bool)]
    if x.shape[0] > MAX_ROWS:  # evenly strided, so the subsample is deterministic
        x = x[torch.linspace(0, x.shape[0] - 1, MAX_ROWS, device=x.device).long()]
    return x


@torch.no_grad()
def effective_rank(x: torch.Tensor, valid=None) -> torch.Tensor:
    """exp(entropy of the normalised singular values) of the rows of x (..., D), RankMe-style (Garrido et
    al. 2023): 1 for a rank-one matrix, n for n orthogonal rows of equal norm. Rows are not centred."""
    x = _rows(x, valid)
    if x.shape[0] == 0 or not bool(x.abs().sum() > 0):
        return torch.zeros((), device=x.device)
    # singular values from the eigenvalues of the smaller Gram matrix: O(N D min(N, D)), no full SVD;
    # float64 because squaring then rooting turns float32 round-off of zero eigenvalues into rank
    x = x.double()
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    sv = torch.linalg.eigvalsh(gram).clamp(min=0).sqrt()
    p = sv / sv.sum()
    return torch.special.entr(p).sum().exp().float()


@torch.no_grad()
def batch_std(x: torch.Tensor, valid=None) -> torch.Tensor:
    """Standard deviation of x (..., D) across the (valid) rows of the batch, averaged over the D features."""
    x = _rows(x, valid)
    if x.shape[0] < 2:
        return torch.zeros((), device=x.device)
    return x.std(dim=0, unbiased=False).mean()
