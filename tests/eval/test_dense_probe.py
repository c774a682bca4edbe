"""Dense probe: features that encode the mask exactly give mIoU 1; IoU arithmetic on a hand-made confusion;
per-patch targets are the pixel shares of each class; random features stay far from 1."""
import torch

from m3i_modular.eval.dense_probe import confusion, dense_probe, iou_scores, logits_to_pixels, patch_targets


def _block_masks(n, grid=(4, 4), patch=4, classes=3, seed=0):
    """Masks constant on each patch (a class per cell), and the per-cell classes."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, classes, (n, *grid), generator=g)
    seg = cells.repeat_interleave(patch, 1).repeat_interleave(patch, 2)
    return cells, seg


def test_features_that_encode_the_mask_give_miou_one():
    cells_tr, seg_tr = _block_masks(12)
    cells_te, seg_te = _block_masks(6, seed=1)
    feats = lambda cells: torch.nn.functional.one_hot(cells, 3).float() * 2.0  # noqa: E731  (N, h, w, 3)
    res = dense_probe(feats(cells_tr), seg_tr, feats(cells_te), seg_te, max_iter=50)
    assert res["miou"] == 1.0 and res["fg_miou"] == 1.0 and res["pixel_acc"] == 1.0 and res["objectness_iou"] == 1.0
    assert res["train_miou"] == 1.0 and res["num_seg_classes"] == 3 and res["grid"] == "4x4"
    assert set(res["val_miou"]) == {"0.01", "0.0001", "1e-06"}


def test_random_features_stay_well_below_one():
    cells_tr, seg_tr = _block_masks(12)
    cells_te, seg_te = _block_masks(6, seed=1)
    g = torch.Generator().manual_seed(0)
    res = dense_probe(torch.randn(12, 4, 4, 8, generator=g), seg_tr, torch.randn(6, 4, 4, 8, generator=g),
                      seg_te, max_iter=50)
    assert res["miou"] < 0.6


def test_iou_of_a_hand_made_confusion():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 2]])
    conf = confusion(pred, target, 3)
    # class 0: TP 3, FP 1 (a 2 predicted 0), FN 1 -> 3/5; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0 -> 0
    s = iou_scores(conf)
    assert abs(s["miou"] - (3 / 5 + 2 / 3 + 0) / 3) < 1e-9
    assert abs(s["fg_miou"] - (2 / 3 + 0) / 2) < 1e-9
    assert abs(s["pixel_acc"] - 5 / 7) < 1e-9      # the ignore pixel counts nowhere
    # any-foreground vs background: 2 foreground pixels found, 1 missed, 1 background called foreground
    assert abs(s["objectness_iou"] - 2 / 4) < 1e-9


def test_patch_targets_are_pixel_shares_and_nearest_assignment_covers_each_patch():
    seg = torch.zeros(1, 4, 4, dtype=torch.long)
    seg[0, :2, :1] = 1          # 2 of the top-left patch's 4 pixels
    seg[0, 3, 3] = 255          # ignored
    t = patch_targets(seg, (2, 2), 2)
    assert torch.allclose(t[0, 0, 0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(t[0, 1, 1], torch.tensor([1.0, 0.0]))   # 3 valid pixels, all class 0
    logits = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    assert logits_to_pixels(logits, (4, 4)).tolist()[0] == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
