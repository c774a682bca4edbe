"""Shared by the conversion round-trip tests."""
import torch


def perturb(module, seed=3):
    """Move every tensor off its init (LayerNorm gammas away from 1, zero biases away from 0) so that a wrong
    key mapping or fold shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return module
