"""Token-correlation analysis (paper Fig. 1 / Table 3) on a shipped tiny model, through
``run_correlation`` (what ``mro analyze correlation`` runs): 500 held-out problems x 5 seeds at
4 tokens per step, temperature 0.5; intra = sum over steps of R_tv (1 token) + R_ppl (the task's
tiny scorer), inter = R_q vs the majority vote of the 5 runs.

    python benchmarks/correlation.py sudoku      # -> benchmarks/results/correlation_sudoku/{table.md,summary.json,correlation.png}
    python benchmarks/correlation.py countdown   # -> benchmarks/results/correlation_countdown/...
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mro.config import build
from mro.eval.correlation import CorrelationConfig, run_correlation

RESULTS = Path(__file__).resolve().parent / "results"
#: task -> the analysis settings (CorrelationConfig fields; the rest are its defaults)
SETTINGS = {
    "sudoku": dict(model="sudoku-tiny", task="sudoku", n=500, seeds=5, tokens_per_step=[4], temperature=0.5),
    "countdown": dict(model="countdown-tiny", task="countdown", task_options="n_numbers=3,max_number=100,max_target=100",
                      n=500, seeds=5, tokens_per_step=[4], temperature=0.5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=SETTINGS)
    args = parser.parse_args()
    run = Path("runs") / f"correlation_{args.task}"
    shutil.rmtree(run, ignore_errors=True)
    result = run_correlation(build(CorrelationConfig, {**SETTINGS[args.task], "out": str(run)}))
    dst = RESULTS / f"correlation_{args.task}"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("table.md", "summary.json", "correlation.png"):
        shutil.copy(run / name, dst / name)
    print(Path(result["table"]).read_text())


if __name__ == "__main__":
    main()
