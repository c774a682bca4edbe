"""Linear probe, one fixed protocol so numbers compare across runs and recipes:

1. standardise the features with the training split's mean and std;
2. multinomial logistic regression, full batch, L-BFGS (strong Wolfe line search), loss = mean CE +
   l2 / 2 * ||W||^2 (no penalty on the bias);
3. l2 chosen on a validation split carved (seeded) from the training features, the most regularised value
   winning ties;
4. refit on all training features with that l2, accuracy on the held-out split.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .subsets import per_class_indices

L2_GRID = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def standardise(train_x: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6):
    mean = train_x.mean(0, keepdim=True)
    std = train_x.std(0, unbiased=False, keepdim=True).clamp(min=eps)
    return tuple((x - mean) / std for x in (train_x, *others))


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, *,
                 max_iter: int = 300) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weights (D, C) and bias (C,) of an L2-regularised softmax regression, trained from zero. `y` holds a
    class per row (N,), or class probabilities (N, C) (the dense probe's per-patch class shares)."""
    w = torch.zeros(x.shape[1], num_classes, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-7,
                            tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _accuracy(x, y, w, b) -> float:
    return float(((x @ w + b).argmax(1) == y).float().mean()) if len(y) else 0.0


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 num_classes: Optional[int] = None, val_fraction: float = 0.2,
                 l2_grid: Sequence[float] = L2_GRID, max_iter: int = 300, seed: int = 0) -> Dict[str, object]:
    """Accuracy on (test_x, test_y) of the protocol above, plus what it chose and saw on the way."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(train_y) < 2:
        raise ValueError("the linear probe needs at least 2 training features")
    dev = train_x.device
    train_y, test_y = train_y.to(dev).long(), test_y.to(dev).long()
    c = int(num_classes or int(torch.cat([train_y, test_y]).max()) + 1)
    xtr, xte = standardise(train_x.float(), test_x.float().to(dev))
    n = xtr.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(dev)
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    val_acc: Dict[str, float] = {}
    best_l2, best = None, -1.0
    for l2 in sorted(l2_grid, reverse=True):  # strongest first: a tie keeps the more regularised model
        w, b = fit_logistic(xtr[fit_idx], train_y[fit_idx], c, l2, max_iter=max_iter)
        acc = _accuracy(xtr[val_idx], train_y[val_idx], w, b)
        val_acc[f"{l2:g}"] = acc
        if acc > best:
            best_l2, best = l2, acc
    w, b = fit_logistic(xtr, train_y, c, best_l2, max_iter=max_iter)
    return {"accuracy": _accuracy(xte, test_y, w, b), "train_accuracy": _accuracy(xtr, train_y, w, b),
            "l2": best_l2, "val_accuracy": val_acc, "n_train": n, "n_test": int(len(test_y)),
            "dim": int(xtr.shape[1]), "num_classes": c, "chance": 1.0 / c}


def low_label_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                    per_class: int, num_classes: Optional[int] = None, seed: int = 0,
                    **kwargs) -> Dict[str, object]:
    """The same protocol trained on `per_class` seeded samples of each class only (a few-label regime where
    a full probe saturates on easy data); scored on the whole held-out split."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    c = int(num_classes or int(torch.cat([train_y, test_y]).max()) + 1)
    idx = torch.tensor(per_class_indices(train_y.tolist(), per_class, seed), dtype=torch.long)
    return linear_probe(train_x[idx], train_y[idx], test_x, test_y, num_classes=c, seed=seed, **kwargs)
