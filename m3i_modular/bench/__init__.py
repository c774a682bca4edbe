"""The benchmarks behind scripts/benchmark.py, one module each with `main(argv)`: data (loader vs step demand),
dcnv3 (CUDA kernel vs reference), text_memory (preprocessing peak memory), vit / bert / m3i (our training step
against timm's, TencentPretrain's, MAE's); common.py times contestants side by side and writes the CSV rows.

Sits on top of the library (it builds runs and trainers like pretrain.py does); nothing in the package imports
it. This file imports nothing, so `scripts/benchmark.py --list` needs no torch."""
