#!/usr/bin/env bash
# Issue #26 item 3: the reduced Table 2 (a) and (e) rows of ResNet-110, three seeds, under
# He et al. 2015's warm-up rule. Resumable: the same command continues (reproduce skips
# finished rows and resumes interrupted ones). One thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
idresnet reproduce results/table2-warmup-rule/table2-warmup.yaml --scale reduced --runs 3 \
    --data ../shared/datasets/cifar10-jpeg.tar.gz --threads 1 --out runs/reproduce/table2-warmup-rule
