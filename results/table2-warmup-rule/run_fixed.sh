#!/usr/bin/env bash
# Issue #26 item 3, the baseline on the same CPU: the reduced Table 2 (a) and (e) rows of
# ResNet-110, three seeds, with the fixed warm-up count of results/table2-reduced-seeds (50
# iterations at this scale), so that the rule (run.sh) is compared on one machine: the same row
# and seed gives another number on another CPU's kernels (results/README.md). Resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
idresnet reproduce table2 --scale reduced --runs 3 --rows resnet110_a resnet110_e \
    --data ../shared/datasets/cifar10-jpeg.tar.gz --threads 1 --out runs/reproduce/table2-fixed-warmup
