#!/usr/bin/env python
"""Text classification from label<TAB>text TSV files: fine-tune a pretrained (or randomly initialised)
text encoder with a linear head on the mean (or first) token, and report dev accuracy.

    python finetune/run_classifier.py --pretrained runs/bert_mini --train train.tsv --dev dev.tsv
    python finetune/run_classifier.py --config models/bert_mini.json --train ... --dev ...   # random init
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

from m3i_modular.errors import ConfigError, DataError  # noqa: E402
from m3i_modular.eval_cli.classifier import run  # noqa: E402  (the logic)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained", help="our checkpoint or run directory")
    p.add_argument("--config", help="a recipe: random initialisation (a baseline)")
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-length", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool", default="mean", choices=["mean", "cls"], help="sentence vector for the head")
    p.add_argument("--probe-epochs", type=int, default=0, help="train the head alone first (LP-FT)")
    p.add_argument("--probe-lr", type=float, default=1e-2)
    a = p.parse_args(argv)
    try:
        result = run(train=a.train, dev=a.dev, pretrained=a.pretrained, config=a.config, epochs=a.epochs,
                     lr=a.lr, batch_size=a.batch_size, seq_length=a.seq_length, seed=a.seed, pool=a.pool,
                     probe_epochs=a.probe_epochs, probe_lr=a.probe_lr)
    except (ConfigError, DataError) as e:
        print(f"run_classifier.py: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
