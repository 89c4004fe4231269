#!/usr/bin/env bash
# Issue #6 GPU check: throughput per model and execution mode (eager fp32 NCHW baseline,
# channels_last, bf16, CUDA graphs, torch.compile, activation checkpointing), the data
# pipeline's share of step time, ResNet-1001 checkpointing at batch 128, and a short
# real training run on the CIFAR-10 JPEG copy. Finishes in under 8 minutes on one H100
# (hard limit: GPU_CHECK_LIMIT seconds, default 470, enforced by `timeout`).
#
#   bash benchmarks/gpu_check.sh                       # GPU machine; writes into $OUT if set
#   bash benchmarks/gpu_check.sh --device cpu --quick  # every phase, tiny, on a CPU
#
# Data: copy /work/shared/datasets/cifar10-jpeg.tar.gz to datasets/ in the repository
# (git-ignored) and name `datasets` in the device call's carry; or pass --data PATH.
# Needs only PyTorch (and numpy, pillow, pyyaml, tqdm, safetensors): the package is
# used from src/ through PYTHONPATH, nothing is installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
LIMIT="${GPU_CHECK_LIMIT:-470}"
OUTDIR="${OUT:-$ROOT/benchmarks/results/gpu-check}"
exec timeout -k 10 "$LIMIT" "$PY" benchmarks/gpu_check.py --out "$OUTDIR" --budget "$((LIMIT - 15))" "$@"
