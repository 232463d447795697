"""Write ``countdown_test.jsonl``: held-out Countdown problems for the local lm-eval tasks.

The first ``n`` problems of the generator's test split (seed 1234, ``mro eval``'s default data seed)
with their solutions written as worked chains (``layout=chain``, as ``countdown-tiny`` was trained),
and for the multiple-choice task four candidate solutions: the problem's own first, then the
recorded solutions of the next three problems in the file (valid chains, wrong for this problem).

    python configs/lm_eval/tasks/mro_countdown/make_data.py [N]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mro.tasks import get_task

OUT = Path(__file__).resolve().parent / "countdown_test.jsonl"


def main(n: int = 200) -> None:
    problems = get_task("countdown").generate(n, seed=1234, split="test", layout="chain")
    with OUT.open("w") as f:
        for i, ex in enumerate(problems):
            others = [problems[(i + j) % n].data["solution"] for j in (1, 2, 3)]
            row = {"nums": ex.data["nums"], "target": ex.data["target"], "solution": ex.data["solution"],
                   "choices": [ex.data["solution"], *others], "label": 0}
            f.write(json.dumps(row) + "\n")
    print(f"wrote {n} problems to {OUT}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
