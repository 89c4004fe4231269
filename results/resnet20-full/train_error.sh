#!/usr/bin/env bash
# Issue #26 item 1: the training error of a finished run's final weights on the
# un-augmented CIFAR-10 training images (all 50,000), with the current code's
# `idresnet eval --split train` (run.sh, which trains with frozen code, does not call it).
#   MODEL=resnet20 SEED=0 AMP=bf16 bash results/resnet20-full/train_error.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-resnet20}
SEED=${SEED:-0}
AMP=${AMP:-off}
TAG=seed$SEED; [ "$AMP" = off ] || TAG=$TAG-$AMP
RUN=${RUN:-runs/resnet20-full/$MODEL-$TAG}
DATA=${DATA:-../shared/datasets/cifar10-jpeg.tar.gz}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
here=results/resnet20-full/$MODEL-$TAG
mkdir -p "$here"
idresnet eval --weights "$RUN" --data "$DATA" --split train --json > "$here/eval-train.json"
cat "$here/eval-train.json"
