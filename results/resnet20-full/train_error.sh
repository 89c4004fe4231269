#!/usr/bin/env bash
# Issue #26 item 1: the training error of a finished run's final weights on the
# un-augmented CIFAR-10 training images (all 50,000), with the current code's
# `idresnet eval --split train` (added after these runs started; run.sh, which trains them
# with frozen code, does not call it).
#   MODEL=resnet20 SEED=0 bash results/resnet20-full/train_error.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-resnet20}
SEED=${SEED:-0}
RUN=${RUN:-runs/resnet20-full/$MODEL-seed$SEED}
DATA=${DATA:-../shared/datasets/cifar10-jpeg.tar.gz}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
here=results/resnet20-full/$MODEL-seed$SEED
mkdir -p "$here"
idresnet eval --weights "$RUN" --data "$DATA" --split train --json > "$here/eval-train.json"
cat "$here/eval-train.json"
