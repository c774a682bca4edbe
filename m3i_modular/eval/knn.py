"""Weighted k-NN classification on frozen features (the DINO protocol): cosine similarity to the training
features, the k nearest vote for their class with weight exp(similarity / temperature)."""
from typing import Optional

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, *, k: int = 20,
                temperature: float = 0.07, num_classes: Optional[int] = None, chunk: int = 1024) -> torch.Tensor:
    """Predicted class of each test row. k is capped at the number of training rows."""
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    if train_x.shape[0] == 0:
        raise ValueError("k-NN needs at least one training feature")
    train = F.normalize(train_x.float(), dim=1)
    test = F.normalize(test_x.float().to(train.device), dim=1)
    labels = train_y.to(train.device).long()
    c = int(num_classes or int(labels.max()) + 1)
    k = min(k, train.shape[0])
    preds = []
    for start in range(0, test.shape[0], chunk):  # chunks bound the (test x train) similarity matrix
        sim = test[start:start + chunk] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], c, device=sim.device).scatter_add_(1, labels[top_idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=train.device)


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 **kwargs) -> float:
    preds = knn_predict(train_x, train_y, test_x, **kwargs)
    return float((preds.cpu() == test_y.cpu().long()).float().mean()) if len(preds) else 0.0
