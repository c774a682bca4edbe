import torch

from m3i_modular.interfaces import TargetOut
from m3i_modular.targets.gaussian import GaussianTarget


def test_loss_matches_design_formula_and_mean_baseline():
    torch.manual_seed(0)
    b, n, d = 3, 5, 8
    p, t = torch.randn(b, n, d), torch.randn(b, n, d)
    mask = torch.rand(b, n) > 0.4
    loss, m = GaussianTarget(second_moment_weight=0.02, mean_baseline=True)(
        p, TargetOut(valid=torch.ones(b, dtype=torch.bool), value=t), mask)
    # M3I / UniGrad: pos = mean_i ||p_i - t_i||^2 over the loss tokens; C = T^T T / M over all target tokens;
    # neg = mean_i p_i^T C p_i; loss = (pos + 0.02 neg) / D
    T = t.reshape(-1, d)
    C = T.T @ T / T.shape[0]
    pi, ti = p[mask], t[mask]
    pos = ((pi - ti) ** 2).sum(-1).mean()
    neg = torch.einsum("id,de,ie->i", pi, C, pi).mean()
    assert torch.allclose(loss, (pos + 0.02 * neg) / d, atol=1e-5)
    mean = ti.mean(0)
    base = (((mean - ti) ** 2).sum(-1).mean() + 0.02 * (mean @ C @ mean)) / d
    assert torch.allclose(m["mean_baseline"], base, atol=1e-5)
