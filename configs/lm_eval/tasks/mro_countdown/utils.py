"""lm-eval task functions over a local Countdown JSONL, built from mro's own code (docs/method.md section 10).

The problems are read by mro's Countdown loader (what ``mro eval --data FILE`` reads), the prompt is
the built-in tiny layout of ``CountdownTask.tiny_input`` (the ``--model mro`` model puts ``<bos>``
in front, as that layout does) or the d1 protocol's text prompt (``mro.tasks.protocols``), and a
response is scored by mro's Countdown checker, so an lm-eval
run and ``mro eval`` on the same file agree problem by problem. ``MRO_COUNTDOWN_DATA`` names
another file of the same shape (default: ``countdown_test.jsonl`` beside this file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets

from mro.models.tokenizer import CharTokenizer
from mro.tasks import Example, get_task
from mro.tasks.protocols import build_prompt

DATA = Path(__file__).resolve().parent / "countdown_test.jsonl"
TASK = get_task("countdown")
_TOKENIZER = CharTokenizer()


def data_file() -> Path:
    return Path(os.environ.get("MRO_COUNTDOWN_DATA", DATA))


def load(**_) -> datasets.DatasetDict:
    """The problems of the data file as lm-eval's ``custom_dataset`` (split ``test``), in file
    order; each row keeps the file's own fields (``solution``, ``choices``) next to ``nums`` and
    ``target`` as mro reads them."""
    file = data_file()
    examples = TASK.load(str(file))
    raw = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    rows = [{**r, "id": ex.id, "nums": ex.data["nums"], "target": ex.data["target"]} for r, ex in zip(raw, examples)]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def example(doc: dict) -> Example:
    return Example(id=doc["id"], question="", answer=doc["target"], data={"nums": doc["nums"], "target": doc["target"]})


def doc_to_text(doc: dict) -> str:
    """The tiny layout's prompt text (``3,4,12>41:``) without its ``<bos>``."""
    return _TOKENIZER.decode(TASK.tiny_input(example(doc), _TOKENIZER).prompt_ids)


def doc_to_text_d1(doc: dict) -> str:
    """The d1 protocol's prompt (``mro eval --protocol d1``'s, from ``mro.tasks.protocols.build_prompt``;
    the model adds the protocol's response prefix ``<reasoning>`` with ``protocol=d1``)."""
    system, user = build_prompt(TASK, example(doc), "d1")
    return user if system is None else f"{system}\n\n{user}"  # d1 puts its instruction in the user turn


def process_results(doc: dict, results: list[str]) -> dict:
    """``correct``: mro's Countdown checker on the response."""
    return {"correct": TASK.score(example(doc), results[0])["correct"]}


def doc_to_choice(doc: dict) -> list[str]:
    """The multiple-choice task's candidates: the problem's recorded solution and others' (``choices``)."""
    return list(doc["choices"])
