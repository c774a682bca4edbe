"""Studies: recipes x seeds at equal steps and batch -> pretraining -> every applicable evaluation -> a table
(mean ± sd over seeds) and a chart (plan, run, report, cli: scripts/compare_recipes.py), and the training
curves of runs (plot: scripts/plot_metrics.py).

Sits on top of the library: it runs pretrain.py and the finetune/ entry points as subprocesses and imports
the package only where it needs a helper; nothing in the package imports it. No torch at import (`--help` and
`--plan` answer at once)."""
