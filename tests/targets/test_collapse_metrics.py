"""Effective rank and target spread: analytic values on known matrices, and the gaussian target's metrics."""
import math

import torch

from m3i_modular.interfaces import TargetOut
from m3i_modular.targets.collapse import batch_std, effective_rank
from m3i_modular.targets.gaussian import GaussianTarget


def test_rank_one_matrix_has_effective_rank_one():
    u, v = torch.randn(50, 1), torch.randn(1, 16)
    assert abs(float(effective_rank(u @ v)) - 1.0) < 1e-3


def test_identity_has_effective_rank_n_and_equal_norm_orthogonal_rows_too():
    assert abs(float(effective_rank(torch.eye(12))) - 12.0) < 1e-3
    q, _ = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64))
    assert abs(float(effective_rank(3.0 * q[:7].float())) - 7.0) < 1e-3  # wide: the N x N Gram path


def test_effective_rank_of_two_unequal_singular_values():
    x = torch.diag(torch.tensor([3.0, 1.0]))
    p = torch.tensor([0.75, 0.25])
    expected = math.exp(float(-(p * p.log()).sum()))
    assert abs(float(effective_rank(x)) - expected) < 1e-4


def test_valid_mask_and_token_dims_are_respected():
    x = torch.zeros(2, 3, 4)
    x[0] = torch.eye(4)[:3]          # three orthogonal rows
    x[1] = 5.0                       # a constant block, masked out below
    valid = torch.tensor([[True] * 3, [False] * 3])
    assert abs(float(effective_rank(x, valid)) - 3.0) < 1e-3
    assert float(effective_rank(torch.zeros(5, 4))) == 0.0


def test_batch_std_is_zero_for_a_collapsed_batch_and_known_otherwise():
    assert float(batch_std(torch.ones(8, 5) * 2.5)) == 0.0
    x = torch.tensor([[0.0, 0.0], [2.0, 4.0]])  # per-feature std (biased) 1 and 2
    assert abs(float(batch_std(x)) - 1.5) < 1e-6


def test_gaussian_target_reports_target_std_and_pred_rank():
    t = torch.randn(6, 4, 8)
    pred = torch.randn(6, 4, 8)
    tgt = TargetOut(valid=torch.ones(6, dtype=torch.bool), value=t)
    _, metrics = GaussianTarget()(pred, tgt)
    assert abs(float(metrics["target_std"]) - float(t.reshape(-1, 8).std(0, unbiased=False).mean())) < 1e-5
    assert abs(float(metrics["pred_rank"]) - float(effective_rank(pred))) < 1e-5
    _, off = GaussianTarget(collapse_metrics=False)(pred, tgt)
    assert "pred_rank" not in off and "target_std" not in off
