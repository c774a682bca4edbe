#!/usr/bin/env python
"""Compare pretraining recipes: recipes x seeds at equal steps and batch -> pretrain -> every applicable
evaluation -> per-cell results JSON -> a markdown table (mean ± sd over seeds) and a PNG chart.

    python scripts/compare_recipes.py --study m3i --out studies/m3i --jobs 2 --threads 1   # issue 15's study (CPU)
    python scripts/compare_recipes.py --recipes mae_vit supervised_vit random_init --seeds 0 1 \\
        --steps 200 --batch-size 64 --evals linear knn --out studies/mine
    python scripts/compare_recipes.py --study m3i --out studies/m3i --plan          # print the plan only
    python scripts/compare_recipes.py --study m3i --out studies/m3i --report        # rebuild table + chart

`--help` says the rest. The study lives in m3i_modular/study/ (plan, run, report; cli.py is this command line).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the package, from a checkout

from m3i_modular.study.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
