#!/usr/bin/env bash
# Issue #26's full-schedule runs: ResNet-20 (original or pre-activation), CIFAR-10 (the JPEG
# q75 copy), the recipe of He et al. 2015 for ResNet-20: 64,000 iterations at batch 128, lr 0.1,
# /10 at 32,000 and 48,000, momentum 0.9, weight decay 1e-4, NO warm-up (--warmup-iters 0:
# idresnet's CIFAR default warms every depth up for 400 iterations; He et al. 2015 used that for
# ResNet-110 only). Full 10,000-image test set every 1,600 iterations, channels_last with the
# training step compiled by inductor (--compile), OMP_NUM_THREADS threads (default 1), AMP
# precision (default off = fp32; AMP=bf16 for bf16 autocast, used where a session's CPU has AMX and
# fp32 could not finish inside one session: results/README.md says which run used which).
# Compiled vs eager channels_last: equal within float rounding and bit-identical on resume
# (tests/training/test_compiled_step.py); speeds in benchmarks/results/cpu-compile-*.md.
# Resumable: the same command continues an interrupted run (checkpoints every 500 iterations).
# When it has finished, it draws the curves, copies the record here, exports float16 weights and
# evaluates them on the test set.
#   MODEL=resnet20 SEED=0 bash results/resnet20-full/run.sh
#   MODEL=preact_resnet20 SEED=0 bash results/resnet20-full/run.sh
#   MODEL=resnet20 SEED=0 AMP=bf16 OMP_NUM_THREADS=2 bash results/resnet20-full/run.sh  (-> $MODEL-seed0-bf16)
set -euo pipefail
MODEL=${MODEL:-resnet20}
SEED=${SEED:-0}
AMP=${AMP:-off}
TAG=seed$SEED; [ "$AMP" = off ] || TAG=$TAG-$AMP
RUN=${RUN:-runs/resnet20-full/$MODEL-$TAG}
DATA=${DATA:-../shared/datasets/cifar10-jpeg.tar.gz}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ -f "$RUN/config.yaml" ]; then
  idresnet train --resume --out "$RUN" --no-progress
else
  idresnet train --model "$MODEL" --dataset cifar10 --data "$DATA" --warmup-iters 0 --seed "$SEED" \
    --eval-interval 1600 --checkpoint-interval 500 --threads "$OMP_NUM_THREADS" --amp "$AMP" --compile \
    --out "$RUN" --no-progress
fi
here=$(dirname "$0")/$MODEL-$TAG
mkdir -p "$here"
idresnet plot "$RUN" --labels "$MODEL, full schedule, seed $SEED, ${AMP/off/fp32}" --out "$here/curves"
cp "$RUN/metrics.csv" "$RUN/status.json" "$RUN/config.yaml" "$here/"
idresnet export --weights "$RUN" --dtype float16 --out "$here/$MODEL-cifar10-full-$TAG-fp16.safetensors"
idresnet eval --weights "$here/$MODEL-cifar10-full-$TAG-fp16.safetensors" --data "$DATA" --json > "$here/eval-fp16.json"
python "$(dirname "$0")/report.py"
