"""Weighted k-NN (DINO protocol) on frozen mean-pooled features of a checkpoint's data source.

    python finetune/run_knn.py --checkpoint runs/mae_vit --k 10 20 100
    python finetune/run_knn.py --random-init --config models/mae_vit.json   # the baseline
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from m3i_modular.errors import ConfigError  # noqa: E402
from m3i_modular.eval.cli import base_parser, run_main  # noqa: E402
from m3i_modular.eval.knn import knn_accuracy  # noqa: E402


def check(args) -> None:
    if any(k < 1 for k in args.k) or args.temperature <= 0:
        raise ConfigError(f"--k must be >= 1 and --temperature > 0, got {args.k} and {args.temperature}")


def evaluate(args, train, held_out) -> dict:
    (xtr, ytr), (xva, yva) = train, held_out
    c = int(max(ytr.max(), yva.max())) + 1
    acc = {str(k): knn_accuracy(xtr, ytr, xva, yva, k=k, temperature=args.temperature, num_classes=c)
           for k in args.k}
    return {"accuracy": acc, "temperature": args.temperature, "n_train": len(ytr), "n_test": len(yva),
            "dim": int(xtr.shape[1]), "num_classes": c, "chance": 1.0 / c}


def main(argv=None) -> int:
    p = base_parser("run_knn.py", "Weighted k-NN on frozen features of a checkpoint's data source.")
    p.add_argument("--k", type=int, nargs="+", default=[20], help="neighbour counts (default 20)")
    p.add_argument("--temperature", type=float, default=0.07, help="vote weight exp(sim / T) (default 0.07)")
    return run_main(p, "knn", evaluate, argv, check)


if __name__ == "__main__":
    sys.exit(main())
