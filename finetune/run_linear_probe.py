"""Linear probe of frozen mean-pooled features (fixed protocol: m3i_modular/eval/linear_probe.py), on all
the training samples drawn and, beside it, a low-label probe on a few of each class.

    python finetune/run_linear_probe.py --checkpoint runs/mae_vit
    python finetune/run_linear_probe.py --random-init --config models/mae_vit.json     # the baseline
    python finetune/run_linear_probe.py --checkpoint runs/mae_vit --train-data data/pets/train --val-data data/pets/val

JSON keys: linear_acc (primary), linear_train_acc, linear_l2, linear_val_acc_l2_<l2>, low_label_acc,
low_label_l2, low_label_per_class, low_label_n_train, n_train, n_test, dim, num_classes, chance, and the
common ones (m3i_modular/eval_cli/common.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

from m3i_modular.eval_cli.common import (add_probe_fit_args, base_parser, check_probe_fit,  # noqa: E402
                                        labels_reason, run_main)
from m3i_modular.errors import ConfigError  # noqa: E402
from m3i_modular.eval.classes import refuse_meaningless  # noqa: E402
from m3i_modular.eval.linear_probe import L2_GRID, linear_probe, low_label_probe  # noqa: E402


def check(args) -> None:
    check_probe_fit(args)
    if args.low_label_per_class < 0:
        raise ConfigError(f"--low-label-per-class must be >= 0 (0: no low-label probe), got "
                          f"{args.low_label_per_class}")


def evaluate(ctx) -> dict:
    args = ctx.args
    train, held_out = ctx.features("train"), ctx.features("val")
    xtr, ytr, xva, yva = train.x, train.labels, held_out.x, held_out.labels
    refuse_meaningless(ytr, names=ctx.splits["train"].class_names())  # a probe of one class scores nothing
    c = int(max(ytr.max(), yva.max())) + 1
    kw = dict(val_fraction=args.val_fraction, l2_grid=L2_GRID if args.l2 is None else args.l2,
              max_iter=args.max_iter, seed=args.seed)
    full = linear_probe(xtr, ytr, xva, yva, num_classes=c, **kw)
    out = {"linear_acc": full["accuracy"], "linear_train_acc": full["train_accuracy"], "linear_l2": full["l2"],
           "linear_val_acc_l2": full["val_accuracy"]}
    if args.low_label_per_class:
        low = low_label_probe(xtr, ytr, xva, yva, per_class=args.low_label_per_class, num_classes=c, **kw)
        out.update({"low_label_acc": low["accuracy"], "low_label_l2": low["l2"],
                    "low_label_per_class": args.low_label_per_class, "low_label_n_train": low["n_train"]})
    out.update({"n_train": len(ytr), "n_test": len(yva), "dim": int(xtr.shape[1]), "num_classes": c,
                "chance": 1.0 / c})
    return out


def main(argv=None) -> int:
    p = base_parser("run_linear_probe.py", "Linear probe (full and low-label) on frozen features.")
    add_probe_fit_args(p, what="train features", grid=L2_GRID, max_iter=300)
    p.add_argument("--low-label-per-class", type=int, default=10,
                   help="also probe with only this many training samples per class, stratified and seeded "
                        "(default 10; 0: off)")
    return run_main(p, "linear_probe", evaluate, argv, check=check, applies=labels_reason, primary="linear_acc")


if __name__ == "__main__":
    sys.exit(main())
