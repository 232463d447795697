"""GSM8K: grade-school word problems with a numeric answer (docs/method.md section 8).

Data: ``openai/gsm8k`` (config ``main``, split ``test``) from the hub, or a local file with
columns ``question`` and ``answer`` (the worked solution ending ``#### N``, or a bare number).
Offline generator: ``reasoning-gym``'s ``gsm_symbolic`` (GSM8K-derived problems with worked
solutions and ``#### N`` answers; docs/method.md section 9) when it is installed. Checking: numeric match
(:func:`mro.tasks.checkers.gsm8k_equal`).
"""

from __future__ import annotations

from mro.errors import MroError
from mro.tasks.base import Example, heldout_bucket, register_task
from mro.tasks.checkers import gsm8k_equal, gsm8k_extract, gsm8k_gold
from mro.tasks.text import TextTask

@register_task
class GSM8KTask(TextTask):
    """GSM8K; the reference answer is the canonical number string (``"1080"``)."""

    name = "gsm8k"
    columns = ("question", "answer")
    hub = ("openai/gsm8k", "main", "test")

    def example(self, row: dict, index: int, source: str) -> Example:
        gold = gsm8k_gold(row["answer"])
        if gold is None:
            raise MroError(f"{source} row {index}: answer {str(row['answer'])[-40:]!r} has no number")
        return Example(id=str(row.get("id") or f"{source}-{index}"), question=str(row["question"]),
                       answer=gold, data={"solution": str(row["answer"])})

    def generate(self, n: int, seed: int, split: str = "test", **options) -> list[Example]:
        """``n`` distinct ``gsm_symbolic`` problems of one split (needs ``reasoning-gym``)."""
        try:
            import reasoning_gym
        except ImportError:
            raise MroError("gsm8k generates problems only with reasoning-gym installed "
                           "(pip install reasoning-gym); or load a data file with columns "
                           "'question', 'answer'") from None
        if split not in ("train", "test"):
            raise MroError(f"split must be 'train' or 'test', got {split!r}")
        # the held-out split keeps ~1 problem in 10: draw up to 30 per problem asked for
        size = 30 * n + 1000
        source = reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed, **options)
        seen: set[str] = set()
        examples: list[Example] = []
        for index in range(size):
            if len(examples) == n:
                break
            item = source[index]
            question = item["question"]
            if question in seen or heldout_bucket(question) != (split == "test"):
                continue
            seen.add(question)
            solution = item["metadata"].get("answer_cot") or f"#### {item['answer']}"
            examples.append(self.example({"question": question, "answer": solution},
                                         len(examples), f"gsm_symbolic-{seed}"))
        if len(examples) < n:
            raise MroError(f"could not generate {n} distinct gsm_symbolic problems for split {split!r}")
        return examples

    def extract(self, response: str) -> str | None:
        return gsm8k_extract(response)

    def score(self, example: Example, response: str) -> dict[str, float]:
        """``accuracy``: the extracted number equals the reference; ``format``: see ``format_ok``."""
        return {"accuracy": float(gsm8k_equal(example.answer, response)),
                "format": self.format_score(response)}
