"""Test-time scaling on the shipped tiny Sudoku model: MRO vs vanilla and baselines.

500 held-out puzzles (10-12 blanks, several solutions allowed), 3 decoding seeds, at the hard
setting (3 tokens per step = 4 steps) and at half its tokens per step (8 steps); the methods are
those of ``tts_compare.py`` (vanilla, TTS-MRO w = 1 and 2, TTS-CBR, best-of-n at equal forward
passes).

    python benchmarks/tts_sudoku.py       # -> benchmarks/results/tts_sudoku.{json,md,png}
"""

from tts_compare import Setting, main

SUDOKU = Setting(stem="tts_sudoku", model="sudoku-tiny", task="sudoku", task_options="min_blanks=10,max_blanks=12",
                 n=500, steps=(4, 8), length=12, described="held-out puzzles with 10-12 blanks")

if __name__ == "__main__":
    main(SUDOKU)
