#!/usr/bin/env bash
# Token-correlation analysis (paper Fig. 1 / Table 3) on the shipped tiny Sudoku model:
# 500 held-out puzzles (10-12 blanks) x 5 seeds at 4 tokens per step (3 steps), temperature 0.5,
# intra = sum over steps of R_tv (1 token) + R_ppl (sudoku-ar-tiny), inter = R_q vs the majority vote of the 5 runs.
#   bash benchmarks/correlation_sudoku.sh   -> benchmarks/results/correlation_sudoku/{table.md,summary.json,correlation.png}
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/correlation_sudoku
rm -rf runs/correlation_sudoku
mro analyze correlation --model sudoku-tiny --task sudoku --n 500 --seeds 5 --tokens-per-step 4 \
  --temperature 0.5 --out runs/correlation_sudoku
mkdir -p "$out"
cp runs/correlation_sudoku/{table.md,summary.json,correlation.png} "$out"/
