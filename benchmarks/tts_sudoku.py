"""Test-time scaling on the shipped tiny Sudoku model: MRO vs vanilla and baselines.

500 held-out puzzles (10-12 blanks, several solutions allowed), 3 decoding seeds, at the hard
setting (3 tokens per step = 4 steps) and at half its tokens per step (8 steps); the methods are
those of ``common/tts.py`` (vanilla, TTS-MRO w = 1 and 2, TTS-CBR, best-of-n at equal forward
passes).

    python benchmarks/tts_sudoku.py       # -> benchmarks/results/tts_sudoku.{json,md,png}
"""

from common.tts import SUDOKU, main

if __name__ == "__main__":
    main(SUDOKU)
