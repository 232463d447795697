"""The demo's numbers as the README quotes them: runs the demo in-process (``run_demo``, what
``mro demo`` runs) and keeps its printout, its wall time and its tables.

    python benchmarks/demo_output.py    # -> benchmarks/results/demo/{demo.txt,demo_time.txt,vanilla.md,tts-mro.md,
                                        #    rs.md,rl.md,accuracy_vs_tokens_per_step.png,countdown/*}
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import time
from pathlib import Path

from mro.config import build
from mro.eval.demo import DemoConfig, run_demo

RESULTS = Path(__file__).resolve().parent / "results" / "demo"
RUN = Path("runs/demo_bench")
#: the demo's run folders whose tables are kept, and the names they are kept under
TABLES = {"vanilla": "vanilla.md", "tts-mro": "tts-mro.md", "sudoku-tiny-rs": "rs.md", "sudoku-tiny-rl": "rl.md"}


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy (not a terminal itself, so the printout is plain text)."""

    def __init__(self, out):
        self.out, self.kept = out, io.StringIO()

    def write(self, s: str) -> int:
        self.out.write(s)
        return self.kept.write(s)

    def flush(self) -> None:
        self.out.flush()


def main() -> None:
    os.environ["COLUMNS"] = "120"  # the width the README's excerpts were printed at
    shutil.rmtree(RUN, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tee = _Tee(sys.stdout)
    start = time.perf_counter()
    with contextlib.redirect_stdout(tee):
        run_demo(build(DemoConfig, {"out": str(RUN)}))
    wall = time.perf_counter() - start
    (RESULTS / "demo.txt").write_text(tee.kept.getvalue())
    line = f"mro demo wall time: {wall:.1f} s on {os.cpu_count()} cores"
    print(line)
    (RESULTS / "demo_time.txt").write_text(line + "\n")
    sudoku = RUN / "n500-seed0"
    for run, name in TABLES.items():
        shutil.copy(sudoku / run / "table.md", RESULTS / name)
    shutil.copy(sudoku / "accuracy_vs_tokens_per_step.png", RESULTS / "accuracy_vs_tokens_per_step.png")
    countdown = sudoku / "countdown-n200"
    (RESULTS / "countdown").mkdir(exist_ok=True)
    for run in sorted(p for p in countdown.iterdir() if (p / "table.md").is_file()):  # vanilla, tts-mro, trained models
        shutil.copy(run / "table.md", RESULTS / "countdown" / f"{run.name}.md")
    shutil.copy(countdown / "accuracy_vs_tokens_per_step.png", RESULTS / "countdown" / "accuracy_vs_tokens_per_step.png")


if __name__ == "__main__":
    main()
