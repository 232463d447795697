"""The setting of the timing benchmarks (reward_cost.py, tts_overhead.py, sampler_overhead.py):
the shipped tiny Sudoku model on one torch thread and a batch of generator puzzles in its layout."""

from __future__ import annotations

import torch

from mro.models import load_model
from mro.tasks import get_task
from mro.tasks.base import tiny_batch


def sudoku_batch(n: int, seed: int, **generate):
    """``(model, task, prompts, responses)``: sudoku-tiny and ``n`` puzzles from
    ``task.generate(n, seed=seed, **generate)``; torch on one thread (steadier timings)."""
    torch.set_num_threads(1)
    model = load_model("sudoku-tiny")
    task = get_task("sudoku")
    prompts, responses = tiny_batch(task, task.generate(n, seed=seed, **generate), model.tokenizer)
    return model, task, prompts, responses
