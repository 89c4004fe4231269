#!/usr/bin/env bash
# Issue #26 item 2 / #27 item 4: does bf16 autocast change the error of the original ResNet-20
# on the CPU past one epoch? The same seed, data order and recipe in fp32 and in bf16, at an
# eighth of He et al. 2015's schedule (REDUCED: BUDGET 0.125 = 8,000 iterations at batch 128,
# ~20 epochs, lr 0.1 /10 at 4,000 and 6,000, no warm-up), channels_last, compiled step,
# OMP_NUM_THREADS threads (default 1; the two runs side by side, one core each), CIFAR-10 JPEG
# q75 copy, full test set every 400 iterations. The full-schedule bf16 run
# (results/resnet20-full/) is read against it.
# Resumable: the same command continues an interrupted run.
#   AMP=bf16 bash results/resnet20-precision/run.sh
#   AMP=off  bash results/resnet20-precision/run.sh
set -euo pipefail
MODEL=${MODEL:-resnet20}
SEED=${SEED:-0}
AMP=${AMP:-off}
BUDGET=${BUDGET:-0.125}
RUN=${RUN:-runs/resnet20-precision/$MODEL-b$BUDGET-seed$SEED-$AMP}
DATA=${DATA:-../shared/datasets/cifar10-jpeg.tar.gz}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ -f "$RUN/config.yaml" ]; then
  idresnet train --resume --out "$RUN" --no-progress
else
  idresnet train --model "$MODEL" --dataset cifar10 --data "$DATA" --warmup-iters 0 --seed "$SEED" --budget "$BUDGET" \
    --eval-interval 400 --checkpoint-interval 500 --threads "$OMP_NUM_THREADS" --amp "$AMP" --compile \
    --out "$RUN" --no-progress
fi
here=$(dirname "$0")/$MODEL-b$BUDGET-seed$SEED-$AMP
mkdir -p "$here"
cp "$RUN/metrics.csv" "$RUN/status.json" "$RUN/config.yaml" "$here/"
