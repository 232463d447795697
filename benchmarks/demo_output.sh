#!/usr/bin/env bash
# The demo's numbers as the README quotes them: runs `mro demo` and keeps its tables and printout.
#   bash benchmarks/demo_output.sh    -> benchmarks/results/demo/{demo.txt,demo_time.txt,vanilla.md,tts-mro.md,rs.md,rl.md,
#                                        accuracy_vs_tokens_per_step.png, countdown/*}
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/demo
rm -rf runs/demo_bench && mkdir -p "$out"
start=$(date +%s.%N)
COLUMNS=120 mro demo --out runs/demo_bench 2>/dev/null | tee "$out/demo.txt"
end=$(date +%s.%N)
python3 -c "import sys; print(f'mro demo wall time: {float(sys.argv[2]) - float(sys.argv[1]):.1f} s on', sys.argv[3], 'cores')" \
  "$start" "$end" "$(nproc)" | tee "$out/demo_time.txt"
cp runs/demo_bench/n500-seed0/vanilla/table.md "$out/vanilla.md"
cp runs/demo_bench/n500-seed0/tts-mro/table.md "$out/tts-mro.md"
cp runs/demo_bench/n500-seed0/sudoku-tiny-rs/table.md "$out/rs.md"
cp runs/demo_bench/n500-seed0/sudoku-tiny-rl/table.md "$out/rl.md"
cp runs/demo_bench/n500-seed0/accuracy_vs_tokens_per_step.png "$out/accuracy_vs_tokens_per_step.png"
cd=runs/demo_bench/n500-seed0/countdown-n200
mkdir -p "$out/countdown"
for run in "$cd"/*/; do  # vanilla, tts-mro and each shipped trained Countdown model
  cp "$run/table.md" "$out/countdown/$(basename "$run").md"
done
cp "$cd/accuracy_vs_tokens_per_step.png" "$out/countdown/accuracy_vs_tokens_per_step.png"
