"""Helpers the benchmark scripts share (each script imports these, never another script).

- :mod:`common.recipes`: the training recipes under ``configs/recipes/`` as configs (through
  ``mro.config``, the CLI's loader) and the trainers that run them in-process.
- :mod:`common.runs`: run folders of the training benchmarks: jobs side by side, logs (read with
  ``mro.io.read_jsonl``, committed gzip-compressed), what a finished run records, report helpers.
- :mod:`common.ship`: scoring kept models on a common validation set and copying one into the package.
- :mod:`common.tts`: the test-time scaling comparison of ``tts_sudoku.py`` and ``tts_countdown.py``.
"""
