#!/usr/bin/env bash
# Run GPU benchmarks on a lent machine that reaches no package registry (the `device` tool):
#   carry .whl/ (diffusers, av, torchao ... wheels for its Python) and .gpu-cache/ (avatars prepared
#   here: FACECAST_CACHE_DIR, since mediapipe is not there), then
#   bash benchmarks/gpu_run.sh python3 benchmarks/bench_musetalk.py --speedups none fp8 ...
# Every command's output is also kept under $OUT (the folder that comes back), named by its order.
set -euo pipefail
OUT=${OUT:-/tmp/facecast-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD/src:/tmp/site FACECAST_CACHE_DIR=$PWD/.gpu-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/gpu.txt"
"$@"
