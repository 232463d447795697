#!/usr/bin/env bash
# Rerun every CPU benchmark but the training ones (train_*.py) in turn; each writes benchmarks/results/.
# Timing benchmarks run one at a time and pin one thread: run this on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
python benchmarks/sudoku_tokens_per_step.py
python benchmarks/tts_sudoku.py
python benchmarks/tts_vs_greedy.py
python benchmarks/correlation.py sudoku
python benchmarks/demo_output.py
python benchmarks/sampler_overhead.py
python benchmarks/reward_cost.py
python benchmarks/tts_overhead.py
python benchmarks/bf16_speed.py
python benchmarks/countdown_tokens_per_step.py
python benchmarks/tts_countdown.py
python benchmarks/correlation.py countdown
python benchmarks/bon_reward_ablation.py
python benchmarks/cache_speed.py
python benchmarks/cache_accuracy.py
python benchmarks/cache_staleness.py   # its --finetune / --distill arms train, so they are not rerun here
python benchmarks/frontier.py
