"""random_mask / block_mask: exact counts, determinism, blockiness, placement rules."""
import pytest
import torch

from m3i_modular.data.views.maskers import BlockMask, RandomMask
from m3i_modular.data.views.pipeline import build_views
from m3i_modular.data.views.view import View
from m3i_modular.errors import ConfigError, DataError


def _view(h, w):
    return View(image=torch.zeros(3, h, w))


@pytest.mark.parametrize("cls", [RandomMask, BlockMask])
@pytest.mark.parametrize("ratio,h,w,ps", [(0.75, 32, 32, 4), (0.4, 32, 48, 8), (0.6, 56, 56, 4), (0.0, 16, 16, 4)])
def test_exact_count(cls, ratio, h, w, ps):
    m = cls(patch_size=ps, ratio=ratio)
    L = (h // ps) * (w // ps)
    for seed in range(5):
        mask = m(_view(h, w), torch.Generator().manual_seed(seed)).mask
        assert mask.dtype == torch.bool and mask.shape == (L,)
        assert int(mask.sum()) == round(ratio * L)


def _adjacent_pairs(mask, gh, gw):
    grid = mask.view(gh, gw)
    return int((grid[:, 1:] & grid[:, :-1]).sum() + (grid[1:] & grid[:-1]).sum())


def test_block_mask_is_blockier_than_random_and_deterministic():
    blk, rnd = BlockMask(patch_size=4, ratio=0.4, min_block=4), RandomMask(patch_size=4, ratio=0.4)
    b = sum(_adjacent_pairs(blk(_view(56, 56), torch.Generator().manual_seed(s)).mask, 14, 14) for s in range(10))
    r = sum(_adjacent_pairs(rnd(_view(56, 56), torch.Generator().manual_seed(s)).mask, 14, 14) for s in range(10))
    assert b > 1.5 * r
    a1 = blk(_view(56, 56), torch.Generator().manual_seed(3)).mask
    assert torch.equal(a1, blk(_view(56, 56), torch.Generator().manual_seed(3)).mask)


def test_grid_must_divide_and_maskers_come_last():
    with pytest.raises(DataError, match="patches"):
        RandomMask(patch_size=5, ratio=0.5)(_view(32, 32), torch.Generator())
    with pytest.raises(ConfigError, match=r"views\.v\[1\].*flip"):
        build_views({"v": [{"type": "random_mask", "patch_size": 4, "ratio": 0.5}, {"type": "flip"}]})
    with pytest.raises(ConfigError, match="ratio"):
        build_views({"v": [{"type": "block_mask", "patch_size": 4, "ratio": 1.0}]})
    # photometric steps may follow a masker
    build_views({"v": [{"type": "random_mask", "patch_size": 4, "ratio": 0.5}, {"type": "normalize"}]})
