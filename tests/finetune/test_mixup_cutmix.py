"""mixup / cutmix on tiny tensors: label weights sum to 1, mixup blends with lam, cutmix's lam is exactly the
share of the image NOT pasted from the partner (border clipping included), and the soft-label loss equals the
hard-label one on unmixed labels."""
import math

import pytest
import torch

from m3i_modular.batch_transforms.mixup_cutmix import MixupCutmix, cutmix_box
from m3i_modular.interfaces import TargetOut
from m3i_modular.target_embeddings.soft_category import SoftCategoryEmbedding
from m3i_modular.targets.boltzmann import BoltzmannTarget
from m3i_modular.targets.soft_boltzmann import SoftBoltzmannTarget


def _batch(b=6, c=3, h=8, w=8):
    images = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 0, 1])[:b]
    return {"views": {"view1": images}, "label": labels, "present": {"label": torch.ones(b, dtype=torch.bool)}}


def test_mixup_blends_pixels_and_labels_with_lam():
    torch.manual_seed(1)
    t = MixupCutmix(mixup_alpha=0.8, cutmix_alpha=0.0).train()
    batch = _batch()
    out = t(batch)
    x, y = batch["views"]["view1"], out["views"]["view1"]
    mix = out["label_mix"]["label"]
    lam = float(mix["lam"][0])
    assert 0.0 <= lam <= 1.0 and torch.equal(mix["partner"], torch.arange(5, -1, -1))
    assert torch.allclose(y, lam * x + (1 - lam) * x.flip(0), atol=1e-6)
    assert batch["views"]["view1"] is x  # the input batch is left as it was
    soft = SoftCategoryEmbedding(num_classes=4, dim=4)(out, view="label")
    assert torch.allclose(soft.value.sum(1), torch.ones(6))
    y_own, y_partner = batch["label"], batch["label"].flip(0)
    expected = lam * torch.eye(4)[y_own] + (1 - lam) * torch.eye(4)[y_partner]
    assert torch.allclose(soft.value, expected, atol=1e-6)
    assert math.isclose(float(soft.value[0, 0]), lam, abs_tol=1e-6)  # y 0, partner (sample 5) y 1
    assert torch.equal(soft.index, batch["label"])


@pytest.mark.parametrize("seed", range(20))
def test_cutmix_lam_is_the_share_not_pasted(seed):
    g = torch.Generator().manual_seed(seed)
    t = MixupCutmix(mixup_alpha=0.0, cutmix_alpha=1.0)
    b, h, w = 4, 8, 12
    images = torch.arange(b, dtype=torch.float32)[:, None, None, None].expand(b, 3, h, w).contiguous()
    mixed, partner, lam = t.mix(images, generator=g)
    for i in range(b):
        from_partner = (mixed[i, 0] == float(partner[i])).float().mean()
        assert math.isclose(float(from_partner), 1.0 - lam, abs_tol=1e-6)
    labels = torch.arange(b)
    batch = {"label": labels, "label_mix": {"label": {"partner": partner, "lam": torch.full((b,), lam)}}}
    soft = SoftCategoryEmbedding(num_classes=b, dim=2)(batch, view="label").value
    assert torch.allclose(soft.sum(1), torch.ones(b))
    assert torch.allclose(soft[torch.arange(b), labels], torch.full((b,), lam))


def test_cutmix_box_is_clipped_at_the_border():
    for seed in range(50):
        y0, y1, x0, x1 = cutmix_box(10, 10, 0.2, generator=torch.Generator().manual_seed(seed))
        assert 0 <= y0 <= y1 <= 10 and 0 <= x0 <= x1 <= 10


def test_switch_prob_picks_cutmix_or_mixup_and_prob_zero_passes_through():
    g = torch.Generator().manual_seed(0)
    t = MixupCutmix(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5)
    kinds = [t.draw(g)[0] for _ in range(400)]
    assert 150 < kinds.count("cutmix") < 250 and kinds.count("none") == 0
    off = MixupCutmix(prob=0.0)
    images = torch.randn(4, 3, 4, 4)
    mixed, _, lam = off.mix(images, generator=g)
    assert lam == 1.0 and torch.equal(mixed, images)


def test_eval_mode_leaves_the_batch_alone():
    t = MixupCutmix().eval()
    batch = _batch()
    assert t(batch) is batch


def test_missing_label_or_missing_partner_label_is_invalid():
    labels = torch.tensor([0, 1, 2, 3])
    present = torch.tensor([True, False, True, True])
    batch = {"label": labels, "present": {"label": present},
             "label_mix": {"label": {"partner": torch.tensor([3, 2, 1, 0]), "lam": torch.full((4,), 0.7)}}}
    out = SoftCategoryEmbedding(num_classes=4, dim=2)(batch, view="label")
    assert out.valid.tolist() == [True, False, False, True]


def test_soft_boltzmann_equals_boltzmann_on_hard_labels_and_smoothing():
    g = torch.Generator().manual_seed(3)
    pred, cand, bias = torch.randn(5, 8, generator=g), torch.randn(4, 8, generator=g), torch.randn(4, generator=g)
    index = torch.tensor([0, 3, 1, 2, 3])
    tgt = TargetOut(valid=torch.ones(5, dtype=torch.bool), candidates=cand, bias=bias, index=index)
    for eps in (0.0, 0.1):
        hard, _ = BoltzmannTarget(label_smoothing=eps)(pred, tgt)
        soft, m = SoftBoltzmannTarget(label_smoothing=eps)(pred, tgt)
        assert torch.allclose(hard, soft, atol=1e-6)
    # zero logits: CE against any distribution is ln C
    zero = TargetOut(valid=torch.ones(2, dtype=torch.bool), candidates=torch.zeros(4, 8),
                     value=torch.tensor([[0.3, 0.7, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]), index=torch.tensor([1, 2]))
    loss, _ = SoftBoltzmannTarget()(torch.randn(2, 8), zero)
    assert math.isclose(float(loss), math.log(4), rel_tol=1e-6)
