"""Dense linear probe: a per-patch linear classifier on FROZEN grid tokens, mIoU against pixel masks
(fixed protocol: m3i_modular/eval/dense_probe.py) -- our stand-in for detection / segmentation transfer.
Needs a source that yields masks (synthetic_shapes does: 0 background, label + 1 for the shape).

    python finetune/run_dense_probe.py --checkpoint runs/m3i_vit
    python finetune/run_dense_probe.py --random-init --config models/m3i_vit.json       # the baseline

JSON keys: miou (primary), fg_miou (class 0 left out), objectness_iou (any shape vs background), pixel_acc,
dense_train_miou, dense_l2, dense_val_miou_l2_<l2>, grid, num_seg_classes, upsample, n_train, n_test, dim, and
the common ones (m3i_modular/eval_cli/common.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

from m3i_modular.eval_cli.common import add_probe_fit_args, base_parser, check_probe_fit, run_main  # noqa: E402
from m3i_modular.errors import DataError  # noqa: E402
from m3i_modular.eval.dense_probe import L2_GRID, dense_probe  # noqa: E402
from m3i_modular.eval.features import frozen, patch_tokens  # noqa: E402


def check(args) -> None:
    check_probe_fit(args)


def applies(ctx):
    for which, s in ctx.splits.items():
        if s.first().get("seg") is None:
            return f"the {which} data ({s.data}) has no pixel masks ('seg'): use a source that yields them " \
                   f"(synthetic_shapes)"
    return None


def evaluate(ctx) -> dict:
    args = ctx.args
    model, dev = ctx.model.model, ctx.model.device
    with frozen(model):
        train = ctx.read("train", encode=lambda x: patch_tokens(model, x.to(dev)), with_seg=True)
        held_out = ctx.read("val", encode=lambda x: patch_tokens(model, x.to(dev)), with_seg=True)
    if len(train) < 2:
        raise DataError(f"the dense probe needs at least 2 training images, got {len(train)}")
    res = dense_probe(train.x, train.seg, held_out.x, held_out.seg, l2_grid=L2_GRID if args.l2 is None else args.l2,
                      val_fraction=args.val_fraction, max_iter=args.max_iter, seed=args.seed,
                      upsample=args.upsample)
    return {"miou": res["miou"], "fg_miou": res["fg_miou"], "objectness_iou": res["objectness_iou"],
            "pixel_acc": res["pixel_acc"],
            "dense_train_miou": res["train_miou"], "dense_l2": res["l2"], "dense_val_miou_l2": res["val_miou"],
            "grid": res["grid"], "num_seg_classes": res["num_seg_classes"], "upsample": res["upsample"],
            "n_train": res["n_train"], "n_test": res["n_test"], "dim": res["dim"]}


def main(argv=None) -> int:
    p = base_parser("run_dense_probe.py", "Dense linear probe (mIoU) on frozen patch tokens.",
                    train_samples=1000, val_samples=500)
    add_probe_fit_args(p, what="training images", grid=L2_GRID, max_iter=200)
    p.add_argument("--upsample", choices=("nearest", "bilinear"), default="nearest",
                   help="patch logits -> pixels: each patch's class for its pixels (nearest, default) or "
                        "logits interpolated between patch centres (bilinear)")
    return run_main(p, "dense_probe", evaluate, argv, check=check, applies=applies, primary="miou")


if __name__ == "__main__":
    sys.exit(main())
