#!/usr/bin/env bash
# Issue 17 item 5, on one NVIDIA GPU (H100 / H200), about 3 minutes: ViT-B/16 MAE and M3I in bf16 (samples/s,
# MFU, M3I's time per FLOP against MAE's), our ViT-B/16 step against timm's, and -- if time is left -- the same
# two recipes with compiled blocks. Each part writes its CSV under results/gpu/ before the next starts, so a
# part cut off by its timeout loses only itself.
#
#   bash scripts/gpu_speed.sh            # from anywhere; PYTHON=... to pick the interpreter (default python3)
#
# Where $OUT names a folder (the device tool's), the CSVs and logs are copied there at the end.
#
# Not here: DCNv3 against InternImage's own CUDA kernel needs an InternImage checkout
# (github.com/OpenGVLab/InternImage, classification/ops_dcnv3) built on the GPU machine with its setup.py;
# with one at $INTERNIMAGE, `python scripts/benchmark.py dcnv3 --dtype bf16` times ours against our reference
# only (the InternImage side is not wired into m3i_modular/bench/dcnv3.py yet).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
RES=results/gpu
mkdir -p "$RES"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RES/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$RES/device.txt"
B=${BATCH:-128}

# 1. MAE vs M3I, ViT-B/16, eager, bf16 (the numbers the issue asks for)
timeout 90 $PY scripts/benchmark.py m3i --device cuda --precision bf16 --batch "$B" --repeats 10 --warmup 3 \
    --csv "$RES/benchmark_m3i.csv" 2>&1 | tee "$RES/m3i_eager.log"

# 2. our ViT-B/16 supervised step against timm's, bf16
timeout 45 $PY scripts/benchmark.py vit --device cuda --precision bf16 --batch "$B" --dim 768 --depth 12 \
    --heads 12 --repeats 10 --warmup 3 --csv "$RES/benchmark_vit.csv" 2>&1 | tee "$RES/vit.log"

# 3. the same with compiled blocks (torch.compile per block; compile time is not timed)
timeout 100 $PY scripts/benchmark.py m3i --device cuda --precision bf16 --batch "$B" --repeats 10 --warmup 3 \
    --variant compiled:train.compile=true --csv "$RES/benchmark_m3i.csv" 2>&1 | tee "$RES/m3i_compiled.log"
echo "CSVs and logs in $RES"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$RES"/* "$OUT"/; fi
