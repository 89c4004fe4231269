#!/usr/bin/env bash
# Issue #14's long run: preact ResNet-110, CIFAR-10 (the JPEG q75 copy), the paper's recipe at
# a quarter of its length (--budget 0.25: 16,000 iterations at batch 128, ~41 epochs, lr 0.01
# warm-up for 100 iterations, 0.1, /10 at 8,000 and 12,000), full test set every 400
# iterations, seed 0, fp32, OMP_NUM_THREADS threads (default 1; the run here used 1, then 2).
# Resumable: the same command continues an interrupted run (RUN keeps checkpoints every 200
# iterations). When it has finished, it draws the curves, exports float16 weights (printing
# their SHA-256) and evaluates them.
#   RUN=runs/preact110-q-seed0 DATA=../shared/datasets/cifar10-jpeg.tar.gz bash results/preact110-quarter/run.sh
set -euo pipefail
RUN=${RUN:-runs/preact110-q-seed0}
DATA=${DATA:-../shared/datasets/cifar10-jpeg.tar.gz}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ -f "$RUN/config.yaml" ]; then
  idresnet train --resume --out "$RUN" --no-progress
else
  idresnet train --model preact_resnet110 --dataset cifar10 --data "$DATA" --budget 0.25 --seed 0 \
    --eval-interval 400 --checkpoint-interval 200 --threads "$OMP_NUM_THREADS" --amp off \
    --out "$RUN" --no-progress
fi
here=$(dirname "$0")
idresnet plot "$RUN" --labels "preact ResNet-110, quarter schedule, seed 0" --out "$here/curves"
cp "$RUN/metrics.csv" "$RUN/status.json" "$RUN/config.yaml" "$here/"
idresnet export --weights "$RUN" --dtype float16 --out "$here/preact_resnet110-cifar10-quarter-seed0-fp16.safetensors"
idresnet eval --weights "$here/preact_resnet110-cifar10-quarter-seed0-fp16.safetensors" --data "$DATA" --json > "$here/eval-fp16.json"
