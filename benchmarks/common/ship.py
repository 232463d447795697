"""Choosing a shipped model among benchmark runs and copying it into the package.

Every candidate's kept model is scored on one common validation set (:data:`SELECT`: held-out
generator problems, never the test problems), since the runs validated on sets of different
sizes; the score is the greedy solved rate, mean over step counts, by ``mro eval``'s harness.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mro.eval.harness import EvalConfig, run_eval
from mro.errors import MroError
from mro.io import atomic_write_json, read_json
from mro.tasks import get_task

from common.recipes import REPO
from common.runs import read_log

CHECKPOINTS = REPO / "src" / "mro" / "checkpoints"
#: the common validation set the shipped models are chosen on (test split, its own generator seed)
SELECT = dict(n=1024, seed=4242)
#: the files of a model folder (a run folder of the tiny-model trainers holds its model among other things)
MODEL_FILES = ("config.json", "*.safetensors", "tokenizer*.json", "special_tokens_map.json", "adapter_config.json",
               "generation_config.json", "vocab.*", "merges.txt", "*.model")


def selection_score(model: Path, task: str, steps: tuple[int, ...], task_options: str) -> float:
    """Greedy solved rate, mean over ``steps``, on the SELECT problems; cached in the run folder
    (``selection.json`` next to the model)."""
    cache = model.parent / "selection.json"
    if cache.is_file():
        return read_json(cache)["score"]
    out = model.parent / "selection-eval"
    shutil.rmtree(out, ignore_errors=True)
    s = run_eval(EvalConfig(model=str(model), task=task, task_options=task_options, n=SELECT["n"],
                            data_seed=SELECT["seed"], steps=list(steps), out=str(out), batch_size=256,
                            progress=False))
    metric = get_task(task).metrics[0]
    solved = {str(r["steps"]): r[metric] for r in s["results"]}
    score = sum(solved.values()) / len(solved)
    atomic_write_json(cache, {"score": score, "solved": solved, **SELECT})
    shutil.rmtree(out, ignore_errors=True)
    return score


def install(model: Path, name: str, run: Path, card: str) -> Path:
    """Copy a kept model folder into the package as built-in ``name``, with the settings of its
    run (``run.json``, or ``train_config.json`` of the old SFT loop; as ``train_config.json``), its
    log (``train_log.txt``, one JSON line each) and a model card (``README.md``, which names the recipe)."""
    settings = next((p for p in (run / "run.json", run / "train_config.json") if p.is_file()), None)
    if settings is None:
        raise MroError(f"{run} holds no settings record (run.json) to ship with its model")
    dst = CHECKPOINTS / name
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for f in sorted(p for pattern in MODEL_FILES for p in Path(model).glob(pattern)):
        shutil.copy(f, dst / f.name)
    shutil.copy(settings, dst / "train_config.json")
    (dst / "train_log.txt").write_text("".join(json.dumps(r) + "\n" for r in read_log(run)))
    (dst / "README.md").write_text(card)
    return dst


def card(name: str, what: str, chosen: dict, script: str, test_set: str) -> str:
    """The model card (``README.md``) of a shipped model chosen by ``script --ship``."""
    test = ", ".join(f"{v:.1f} at {k} steps" for k, v in chosen["test"].items())
    return "\n".join([
        f"# {name}", "", f"{what}.", "",
        f"- Recipe: `{chosen['recipe']}`, seed {chosen['seed']}; run it with "
        f"`mro train {Path(chosen['recipe']).parent.name} --config {chosen['recipe']} --seed {chosen['seed']} --out DIR`.",
        f"- Chosen by `python {script} --ship` among {len(chosen['candidates'])} kept models on "
        f"{chosen['selection_set']['n']} common validation problems (greedy; {chosen['selection']:.2f}%), never on the "
        "test problems.",
        f"- Test ({test_set}, greedy), solved %: {test}.",
        "- `train_config.json`: the run's settings; `train_log.txt`: its log (one JSON line per update and per validation).",
        ""])
