"""View geometry: crops compose boxes, flips toggle, and view pixels map back to exact source coordinates."""
import pytest
import torch

from m3i_modular.data.views.pipeline import apply_view, build_views
from m3i_modular.data.views.transforms import CenterCrop, Flip, RandomResizedCrop, Resize, crop_resize
from m3i_modular.data.views.view import View


def ramp(h, w):
    """channel 0 = x, channel 1 = y of each pixel centre in normalised source coordinates."""
    y, x = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    return torch.stack([x, y, torch.full_like(x, 0.5)])


def _interior(view, sx, sy, k):
    """Source points at least k of this view's pixels inside its box: resampling is exact only there,
    because a resize near a crop edge renormalises its truncated filter."""
    x0, y0, x1, y1 = view.box
    h, w = view.image.shape[-2:]
    mx, my = k * (x1 - x0) / w, k * (y1 - y0) / h
    return (sx > x0 + mx) & (sx < x1 - mx) & (sy > y0 + my) & (sy < y1 - my)


def assert_maps_back(view, stages=(), border=2, atol=1e-4):
    """Every view pixel holds the ramp value of the source point its geometry names."""
    h, w = view.image.shape[-2:]
    v, u = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    sx, sy = view.to_source(u, v)
    keep = torch.ones(h, w, dtype=torch.bool)
    for stage in (*stages, view):
        keep &= _interior(stage, sx, sy, border) if border else keep
    assert keep.sum() >= 4, "the test needs some interior pixels"
    torch.testing.assert_close(view.image[0][keep], sx[keep], atol=atol, rtol=0)
    torch.testing.assert_close(view.image[1][keep], sy[keep], atol=atol, rtol=0)


def test_identity_view_maps_to_itself():
    assert_maps_back(View(image=ramp(16, 24)), border=0)


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_random_crop_flip_chains_map_back_exactly(seed, antialias):
    g = torch.Generator().manual_seed(seed)
    steps = [RandomResizedCrop(size=24, scale=(0.3, 1.0), antialias=antialias), Flip(p=0.5),
             RandomResizedCrop(size=[16, 12], scale=(0.4, 1.0), ratio=(0.5, 2.0), antialias=antialias),
             Flip(p=0.5)]
    view, stages = View(image=ramp(64, 48)), []
    for t in steps:
        view = t(view, g)
        stages.append(view)
    # plain bilinear reproduces a linear ramp exactly; two antialiased resizes drift < 0.25 source px
    # (a half-pixel convention error would be 0.5 px or more)
    assert_maps_back(view, stages, atol=1e-5 if not antialias else 0.25 / 48)


def test_resize_and_center_crop_keep_geometry():
    view = View(image=ramp(40, 60)).flipped()
    g = torch.Generator().manual_seed(0)
    view = CenterCrop(size=[20, 30])(Resize(size=[40, 60])(view, g), g)
    assert view.flip
    assert view.box == pytest.approx((0.25, 0.25, 0.75, 0.75))
    assert_maps_back(view, border=0)
    short = Resize(size=20)(View(image=ramp(40, 60)), g)
    assert short.image.shape[-2:] == (20, 30) and short.box == (0.0, 0.0, 1.0, 1.0)


def test_box_composition_by_hand():
    v = View(image=ramp(8, 8))
    c = crop_resize(v, 0, 2, 8, 4, (8, 4), "bilinear")            # right..: x in [0.25, 0.75]
    assert c.box == pytest.approx((0.25, 0.0, 0.75, 1.0))
    f = c.flipped()
    assert f.flip and f.flipped().flip is False
    d = crop_resize(f, 0, 0, 4, 2, (4, 2), "bilinear")            # left half of a flipped view
    assert d.box == pytest.approx((0.5, 0.0, 0.75, 0.5)) and d.flip   # = right half of the source box
    assert torch.equal(d.geometry(), torch.tensor([0.5, 0.0, 0.75, 0.5, 1.0]))


def test_masked_views_refuse_to_move():
    view = apply_view(build_views({"v": [{"type": "random_mask", "patch_size": 4, "ratio": 0.5}]})["v"],
                      torch.zeros(3, 8, 8, dtype=torch.uint8), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError):
        view.flipped()
