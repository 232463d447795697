"""Accuracy of the shipped tiny Countdown model vs tokens per step, and why it drops (or not).

1,000 held-out 3-number problems (numbers 1-100, targets up to 100, generator seed 1234), greedy
low-confidence decoding, one block of 20 positions, at 1, 2, 4, 8 tokens per step and one step
for the whole answer. Broken down by how many distinct answers a problem has (every expression
over the 3 numbers that hits the target, counted as distinct values-and-numbers the way the
verifier's ``same_answer`` counts them: ``3+4`` and ``4+3`` are one), since committing several
tokens at once can only mix up answers where there are several to mix.

    python benchmarks/countdown_tokens_per_step.py   # -> benchmarks/results/countdown_tokens_per_step.{json,md,png}
"""

from __future__ import annotations

import itertools
import json
import shutil
from fractions import Fraction
from pathlib import Path

from mro.eval.harness import EvalConfig, run_eval
from mro.eval.records import read_jsonl
from mro.tasks import get_task

RESULTS = Path(__file__).parent / "results"
MODEL, N, OPTIONS = "countdown-tiny", 1000, "n_numbers=3,max_number=100,max_target=100"
TPS = [1, 2, 4, 8, 20]
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
       "/": lambda a, b: a / b if b else None}


def solutions(nums: list[int], target: int) -> int:
    """Distinct solution trees ``(x op y) op z`` and ``z op (x op y)`` (exact arithmetic), with
    the operands of ``+`` and ``*`` unordered."""
    found = set()
    for x, y, z in itertools.permutations(nums):
        for o1, o2 in itertools.product(OPS, repeat=2):
            inner = OPS[o1](Fraction(x), Fraction(y))
            if inner is None:
                continue
            first = _canonical(o1, str(x), str(y))
            for value, tree in ((OPS[o2](inner, Fraction(z)), _canonical(o2, first, str(z))),
                                (OPS[o2](Fraction(z), inner), _canonical(o2, str(z), first))):
                if value == target:
                    found.add(tree)
    return len(found)


def _canonical(op: str, a: str, b: str) -> str:
    if op in "+*":
        a, b = sorted((a, b))
    return f"({a}{op}{b})"


def bucket(k: int) -> str:
    return "1 answer" if k == 1 else "2-3 answers" if k <= 3 else "4+ answers"


def main() -> dict:
    RESULTS.mkdir(exist_ok=True)
    run = Path("runs/bench_countdown_tps")
    shutil.rmtree(run, ignore_errors=True)
    s = run_eval(EvalConfig(model=MODEL, task="countdown", n=N, task_options=OPTIONS, tokens_per_step=TPS,
                            out=str(run), batch_size=250, progress=False))
    examples = get_task("countdown").generate(N, seed=1234, split="test", n_numbers=3, max_number=100,
                                              max_target=100)
    kinds = [bucket(solutions(e.data["nums"], e.data["target"])) for e in examples]
    rows = read_jsonl(run / "examples.jsonl")
    groups = sorted(set(kinds))
    table: dict[int, dict] = {}
    for r in s["results"]:
        mine = [x for x in rows if x["steps"] == r["steps"]]
        by = {g: [x["metrics"]["correct"] for x in mine if kinds[x["index"]] == g] for g in groups}
        table[r["steps"]] = {"tokens_per_step": r["tokens_per_step"], "solved": 100 * r["correct"],
                             **{g: 100 * sum(v) / len(v) for g, v in by.items() if v}}
    counts = {g: kinds.count(g) for g in groups}
    lines = ["| tokens/step | steps | solved % | " + " | ".join(f"{g} ({counts[g]})" for g in groups) + " |",
             "|---|---|---|" + "---|" * len(groups)]
    for steps, t in table.items():
        lines.append(f"| {t['tokens_per_step']:g} | {steps} | {t['solved']:.1f} | "
                     + " | ".join(f"{t.get(g, float('nan')):.1f}" for g in groups) + " |")
    hw = s["hardware"]
    lines += ["", f"model {MODEL}, greedy (temperature 0), low_confidence remasking, one block of 20, {N} held-out "
              f"problems (3 numbers 1-100, targets up to 100, data seed 1234), decoding seed 0, {hw['processor']}, "
              f"torch {hw['torch']}. Columns after solved %: solved % among problems with that many distinct answers "
              f"(problem count)."]
    (RESULTS / "countdown_tokens_per_step.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "countdown_tokens_per_step.json").write_text(json.dumps(
        {"table": table, "answer_counts": counts, "summary": s}, indent=2))
    shutil.copy(run / "accuracy_vs_steps.png", RESULTS / "countdown_tokens_per_step.png")
    print("\n".join(lines))
    return table


if __name__ == "__main__":
    main()
