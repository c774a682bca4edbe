"""Our transforms against torchvision.transforms.v2 functionals (a test extra), plus their random draws."""
import math

import pytest
import torch

from m3i_modular.data.views import functional as Fn
from m3i_modular.data.views.transforms import (ColorJitter, GaussianBlur, Grayscale, Normalize, RandomResizedCrop,
                                         Solarize, crop_resize)
from m3i_modular.data.views.view import View

TF = pytest.importorskip("torchvision.transforms.v2.functional")


@pytest.fixture
def img():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 20, 28, generator=g)


def close(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("box,size", [((3, 5, 12, 16), (8, 8)), ((0, 0, 20, 28), (30, 14)), ((2, 1, 7, 9), (7, 9))])
def test_resized_crop(img, box, size):
    top, left, h, w = box
    ours = crop_resize(View(image=img), top, left, h, w, size, "bilinear").image
    close(ours, TF.resized_crop(img, top, left, h, w, list(size), antialias=True))
    ours = crop_resize(View(image=img), top, left, h, w, size, "bicubic").image
    close(ours, TF.resized_crop(img, top, left, h, w, list(size),
                                interpolation=TF.InterpolationMode.BICUBIC, antialias=True))


def test_flip(img):
    close(View(image=img).flipped().image, TF.horizontal_flip(img), atol=0)


@pytest.mark.parametrize("factor", [0.0, 0.6, 1.4])
def test_brightness_contrast_saturation(img, factor):
    close(Fn.adjust_brightness(img, factor), TF.adjust_brightness(img, factor))
    close(Fn.adjust_contrast(img, factor), TF.adjust_contrast(img, factor))
    close(Fn.adjust_saturation(img, factor), TF.adjust_saturation(img, factor))


@pytest.mark.parametrize("shift", [-0.5, -0.13, 0.07, 0.33])
def test_hue(img, shift):
    close(Fn.adjust_hue(img, shift), TF.adjust_hue(img, shift), atol=1e-4)


def test_hsv_round_trip(img):
    close(Fn.hsv_to_rgb(Fn.rgb_to_hsv(img)), img)


def test_grayscale(img):
    ours = Grayscale(p=1.0)(View(image=img), torch.Generator()).image
    close(ours, TF.rgb_to_grayscale(img, num_output_channels=3))


@pytest.mark.parametrize("k,sigma", [(3, 0.5), (5, 1.3), (7, 2.0)])
def test_blur(img, k, sigma):
    close(Fn.gaussian_blur(img, k, sigma), TF.gaussian_blur(img, [k, k], [sigma, sigma]))


def test_solarize_and_normalize(img):
    close(Solarize(threshold=0.4, p=1.0)(View(image=img), torch.Generator()).image, TF.solarize(img, 0.4))
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.3, 0.25]
    close(Normalize(mean=mean, std=std)(View(image=img), torch.Generator()).image, TF.normalize(img, mean, std))


def test_blur_kernel_size_rule():
    assert Fn.blur_kernel_size(224, 224) == 23 and Fn.blur_kernel_size(32, 40) == 5
    assert Fn.blur_kernel_size(8, 8) == 3


def test_random_resized_crop_respects_scale_and_ratio():
    t = RandomResizedCrop(size=8, scale=(0.2, 0.5), ratio=(0.75, 1.333))
    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        v = t(View(image=torch.zeros(3, 200, 200)), g)
        x0, y0, x1, y1 = v.box
        area, aspect = (x1 - x0) * (y1 - y0), (x1 - x0) / (y1 - y0)
        assert 0.19 <= area <= 0.51 and 0.72 <= aspect <= 1.39
        assert v.image.shape == (3, 8, 8)


def test_probabilities_zero_and_one_and_same_generator_same_result(img):
    v = View(image=img)
    for t in (ColorJitter(p=0.0), Grayscale(p=0.0), GaussianBlur(p=0.0), Solarize(p=0.0)):
        assert torch.equal(t(v, torch.Generator().manual_seed(0)).image, img)
    jit = ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=1.0)
    a = jit(v, torch.Generator().manual_seed(5)).image
    assert torch.equal(a, jit(v, torch.Generator().manual_seed(5)).image)
    assert not torch.equal(a, img) and not torch.equal(a, jit(v, torch.Generator().manual_seed(6)).image)
    assert math.isclose(float(GaussianBlur(p=1.0, sigma=(1.0, 1.0))(v, torch.Generator()).image.mean()),
                        float(img.mean()), abs_tol=0.02)
