"""Linear probe of frozen mean-pooled features (fixed protocol: m3i_modular/eval/linear_probe.py).

    python finetune/run_linear_probe.py --checkpoint runs/mae_vit
    python finetune/run_linear_probe.py --random-init --config models/mae_vit.json   # the baseline
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from m3i_modular.errors import ConfigError  # noqa: E402
from m3i_modular.eval.cli import base_parser, run_main  # noqa: E402
from m3i_modular.eval.linear_probe import L2_GRID, linear_probe  # noqa: E402


def check(args) -> None:
    if not 0.0 < args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.l2 is not None and any(v < 0 for v in args.l2):
        raise ConfigError(f"--l2 strengths must be >= 0, got {args.l2}")
    if args.max_iter < 1:
        raise ConfigError(f"--max-iter must be >= 1, got {args.max_iter}")


def evaluate(args, train, held_out) -> dict:
    (xtr, ytr), (xva, yva) = train, held_out
    grid = L2_GRID if args.l2 is None else args.l2
    return linear_probe(xtr, ytr, xva, yva, val_fraction=args.val_fraction, l2_grid=grid,
                        max_iter=args.max_iter, seed=args.seed)


def main(argv=None) -> int:
    p = base_parser("run_linear_probe.py", "Linear probe on frozen features of a checkpoint's data source.")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the train features carved out to choose the L2 strength (default 0.2)")
    p.add_argument("--l2", type=float, nargs="+", help=f"L2 strengths to try (default {list(L2_GRID)})")
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations per fit (default 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation carve-out")
    return run_main(p, "linear_probe", evaluate, argv, check)


if __name__ == "__main__":
    sys.exit(main())
