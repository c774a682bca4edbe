"""How much each objective pulls on the online tower: per objective, the gradient of its WEIGHTED loss
(weight x <name>_loss) with respect to the parameters of the embedding and the encoder, its norm, its share
of the sum of the norms, and the cosine between every two objectives' gradients (negative: they pull the
shared tower in opposite directions). scripts/gradient_share.py runs it on a checkpoint or a recipe at init.
"""
from typing import Any, Dict, List, Sequence

import torch


def tower_parameters(model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """The parameters every objective shares: the online embedding and encoder (trainable ones)."""
    return [p for m in (model.embedding, model.encoder) for p in m.parameters() if p.requires_grad]


def objective_gradients(model: torch.nn.Module, batch: Dict[str, Any]) -> Dict[str, Any]:
    """{"norm": {name: |g|}, "share": {name: |g| / sum |g|}, "cosine": {"a|b": cos(g_a, g_b)},
    "loss": {name: loss}} for one batch, with the model in its current mode (training: batch transforms mix)."""
    params = tower_parameters(model)
    out = model(batch)
    names = [n for n in model.objectives if f"{n}_loss" in out]
    grads: Dict[str, torch.Tensor] = {}
    for i, name in enumerate(names):
        weighted = model.objectives[name].weight * out[f"{name}_loss"].float()
        g = torch.autograd.grad(weighted, params, retain_graph=i < len(names) - 1, allow_unused=True)
        grads[name] = torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1).float()
                                 for x, p in zip(g, params)])
    norms = {n: float(g.norm()) for n, g in grads.items()}
    total = sum(norms.values()) or 1.0
    cos = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            denom = max(norms[a] * norms[b], 1e-30)
            cos[f"{a}|{b}"] = float(grads[a] @ grads[b]) / denom
    return {"norm": norms, "share": {n: v / total for n, v in norms.items()}, "cosine": cos,
            "loss": {n: float(out[f"{n}_loss"].detach()) for n in names}}


def average(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The mean of objective_gradients() over batches, key by key."""
    out: Dict[str, Any] = {}
    for part in ("norm", "share", "cosine", "loss"):
        keys = results[0][part]
        out[part] = {k: sum(r[part][k] for r in results) / len(results) for k in keys}
    return out
