"""Training curves of one or more runs as one PNG: total loss, each objective's `<name>_loss`, the learning
rate and, where the run logged it, the k-NN monitor's `knn_acc` (from each run's metrics.jsonl).

    python scripts/plot_metrics.py runs/m3i_vit runs/clip_vit --output curves.png
    python scripts/plot_metrics.py runs/m3i_vit --smooth 10 --log-loss --output m3i.png

A RUN is a run directory or a metrics.jsonl file. Needs matplotlib, an optional extra:
`pip install -e .[plot]` (nothing else in the project imports it). The drawing is m3i_modular/study/plot.py.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3i_modular.errors import ConfigError, entry_point  # noqa: E402
from m3i_modular.study.plot import plot  # noqa: E402


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser("plot_metrics.py", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or metrics.jsonl files)")
    p.add_argument("--output", required=True, help="the PNG to write")
    p.add_argument("--smooth", type=int, default=1, help="moving average over N logged points (default 1: none)")
    p.add_argument("--log-loss", action="store_true", help="log scale for the loss panels")
    args = p.parse_args(argv)
    if not args.output.lower().endswith(".png"):
        raise ConfigError(f"--output must end in .png, got '{args.output}'")
    if args.smooth < 1:
        raise ConfigError(f"--smooth must be >= 1, got {args.smooth}")
    shown = plot(args.runs, args.output, window=args.smooth, log_loss=args.log_loss)
    print(f"wrote {args.output} ({', '.join(shown)}; {len(args.runs)} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
