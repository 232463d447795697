#!/usr/bin/env bash
# Token-correlation analysis (paper Fig. 1 / Table 3) on the shipped tiny Countdown model:
# 500 held-out 3-number problems (numbers 1-100, targets up to 100) x 5 seeds at 4 tokens per step
# (5 steps), temperature 0.5, intra = sum over steps of R_tv (1 token) + R_ppl (countdown-ar-tiny),
# inter = R_q vs the majority vote of the 5 runs.
#   bash benchmarks/correlation_countdown.sh   -> benchmarks/results/correlation_countdown/{table.md,summary.json,correlation.png}
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/correlation_countdown
rm -rf runs/correlation_countdown
mro analyze correlation --model countdown-tiny --task countdown --task-options n_numbers=3,max_number=100,max_target=100 \
  --n 500 --seeds 5 --tokens-per-step 4 --temperature 0.5 --out runs/correlation_countdown
mkdir -p "$out"
cp runs/correlation_countdown/{table.md,summary.json,correlation.png} "$out"/
