"""Weighted k-NN (DINO protocol) on frozen mean-pooled features.

    python finetune/run_knn.py --checkpoint runs/mae_vit --k 10 20 100
    python finetune/run_knn.py --random-init --config models/mae_vit.json               # the baseline
    python finetune/run_knn.py --checkpoint runs/mae_vit --train-data data/pets/train --val-data data/pets/val

JSON keys: knn_acc (primary: accuracy at the first --k), knn_k, knn_acc_k<k> for every --k,
knn_temperature, n_train, n_test, dim, num_classes, chance, and the common ones (m3i_modular/eval_cli/common.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

from m3i_modular.eval_cli.common import base_parser, labels_reason, run_main  # noqa: E402
from m3i_modular.errors import ConfigError  # noqa: E402
from m3i_modular.eval.classes import refuse_meaningless  # noqa: E402
from m3i_modular.eval.knn import knn_accuracy  # noqa: E402


def check(args) -> None:
    if any(k < 1 for k in args.k) or args.temperature <= 0:
        raise ConfigError(f"--k must be >= 1 and --temperature > 0, got {args.k} and {args.temperature}")


def evaluate(ctx) -> dict:
    args = ctx.args
    train, held_out = ctx.features("train"), ctx.features("val")
    xtr, ytr, xva, yva = train.x, train.labels, held_out.x, held_out.labels
    refuse_meaningless(ytr, k=args.k, names=ctx.splits["train"].class_names())  # one class; k > the training set
    c = int(max(ytr.max(), yva.max())) + 1
    acc = {k: knn_accuracy(xtr, ytr, xva, yva, k=k, temperature=args.temperature, num_classes=c) for k in args.k}
    out = {"knn_acc": acc[args.k[0]], "knn_k": args.k[0]}
    out.update({f"knn_acc_k{k}": a for k, a in acc.items()})
    out.update({"knn_temperature": args.temperature, "n_train": len(ytr), "n_test": len(yva),
                "dim": int(xtr.shape[1]), "num_classes": c, "chance": 1.0 / c})
    return out


def main(argv=None) -> int:
    p = base_parser("run_knn.py", "Weighted k-NN on frozen features.")
    p.add_argument("--k", type=int, nargs="+", default=[20], help="neighbour counts (default 20; the first is "
                                                                  "knn_acc)")
    p.add_argument("--temperature", type=float, default=0.07, help="vote weight exp(sim / T) (default 0.07)")
    return run_main(p, "knn", evaluate, argv, check=check, applies=labels_reason, primary="knn_acc")


if __name__ == "__main__":
    sys.exit(main())
