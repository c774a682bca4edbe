import torch

from m3i_modular.layers.positions import grid_centres, view_relative_positions

FULL = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])


def test_identical_views_give_the_standard_grid():
    g = torch.tensor([[0.1, 0.2, 0.7, 0.9, 0.0], [0.3, 0.0, 0.8, 0.5, 1.0]])
    pos, log_scale = view_relative_positions(g, g, (4, 4))
    assert torch.allclose(pos, grid_centres(4, 4).expand(2, -1, -1), atol=1e-6)
    assert torch.allclose(log_scale, torch.zeros(2, 2))


def test_right_half_crop_maps_into_the_right_half():
    right = torch.tensor([[0.5, 0.0, 1.0, 1.0, 0.0]])
    pos, log_scale = view_relative_positions(right, FULL, (4, 4))
    assert (pos[..., 0] >= 0.5).all() and (pos[..., 0] <= 1.0).all()
    assert torch.allclose(pos[0, :4, 0], torch.tensor([0.5625, 0.6875, 0.8125, 0.9375]))
    assert torch.allclose(log_scale, torch.log(torch.tensor([[0.5, 1.0]])))


def test_flip_reverses_the_order():
    flipped = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]])
    pos, _ = view_relative_positions(flipped, FULL, (4, 4))
    row = pos[0, :4, 0]
    assert torch.allclose(row, grid_centres(4, 4)[:4, 0].flip(0))
    assert torch.allclose(pos[0, :, 1], grid_centres(4, 4)[:, 1])     # y untouched


def test_disjoint_crops_fall_outside_without_clamping():
    left = torch.tensor([[0.0, 0.0, 0.4, 1.0, 0.0]])
    right = torch.tensor([[0.6, 0.0, 1.0, 1.0, 0.0]])
    pos, _ = view_relative_positions(right, left, (2, 2))
    assert (pos[..., 0] > 1.0).all()
    # centre x of the right crop's first column: source 0.7 -> (0.7 - 0) / 0.4 = 1.75
    assert torch.allclose(pos[0, 0, 0], torch.tensor(1.75))
