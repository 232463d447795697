"""Per-task defaults of ``mro train rs`` and ``mro train rl``: the best recipe measured for each
tiny testbed (docs/method.md sections 6 and 7), so ``mro train rl --model sudoku-tiny`` with no
other flag runs it.

A field a trainer marks ``task_default`` in its metadata has ``None`` as its dataclass default;
:func:`fill_task_defaults` replaces a ``None`` by the value for the run's task, or by the ``"*"``
entry (any other task, e.g. GSM8K with a real model). A value the user gives is never replaced.
The recipes under ``configs/recipes/<task>/<verb>/`` named in :data:`SOURCES` hold the same
values (a test keeps them equal).
"""

from __future__ import annotations

import dataclasses

from mro.errors import MroError

#: verb -> task -> field -> value; "*" is every task without an entry of its own
TASK_DEFAULTS: dict[str, dict[str, dict]] = {
    "rl": {
        # Sudoku: benchmarks/results/rl_defaults/tune.md (KL keeps 12-step accuracy, cosine and 2e-4 go further,
        # SGRO's potential shaping gives every step a correctness signal)
        "sudoku": dict(task_options="min_blanks=10,max_blanks=12", steps=[3], temperature=2.0, val_steps=[3, 12],
                       val_every=50, lr=2e-4, lr_schedule="cosine", rewards="q", format_weight=0.0, shaping=True,
                       kl_coef=0.05),
        "countdown": dict(task_options="n_numbers=3,max_number=100,max_target=100", steps=[5], temperature=1.0,
                          val_steps=[5, 10], val_every=20, lr=1e-4, lr_schedule="constant", rewards="q",
                          format_weight=0.0, shaping=False, kl_coef=0.0),
        # other tasks: the best MRO recipe measured on the tiny testbeds (R_tv at a quarter of R_q's spread)
        "*": dict(task_options=None, steps=[3], temperature=1.0, val_steps=[2, 3, 4], val_every=25, lr=1e-4,
                  lr_schedule="constant", rewards="tv=0.25,q", format_weight=1.0, shaping=True, kl_coef=0.0),
    },
    "rs": {
        "sudoku": dict(task_options="min_blanks=10,max_blanks=12", collect="best-of-n", problems=8000,
                       collect_batch=500, collect_steps=12, collect_temperature=0.5, k=2, select="vote", rewards="q",
                       target="final", lr=3e-4, batch_size=64, updates=2500, lr_schedule="cosine", val_every=100,
                       val_n=1024, val_steps=[2, 3, 4], max_minutes=12.0),
        "countdown": dict(task_options="n_numbers=3,max_number=100,max_target=100", collect="best-of-n",
                          problems=8000, collect_batch=500, collect_steps=20, collect_temperature=0.5, k=2,
                          select="vote", rewards="q", target="final", lr=3e-4, batch_size=64, updates=2000,
                          lr_schedule="cosine", val_every=100, val_n=256, val_steps=[5, 10], max_minutes=8.0),
        "*": dict(task_options=None, collect="tts-mro", problems=2000, collect_batch=250, collect_steps=3, collect_temperature=0.5, k=4,
                  select="vote", rewards="tv,ppl,q", target="transition", lr=1e-4, batch_size=64, updates=300,
                  lr_schedule="constant", val_every=25, val_n=256, val_steps=[2, 3, 4], max_minutes=None),
    },
}

#: the recipe each task's defaults come from (``configs/recipes/<task>/<verb>/<name>.yaml``)
SOURCES = {("rl", "sudoku"): "default", ("rl", "countdown"): "default",
           ("rs", "sudoku"): "rs-12c", ("rs", "countdown"): "rs-20"}


def task_default(help_text: str, **more) -> dict:
    """Metadata of a field whose default is the task's (``None`` until filled)."""
    return {"help": f"{help_text} (default: the task's recipe, docs/method.md; `mro train ... --help` "
                    "lists none of them, `run.json` records the value used)", "task_default": True, **more}


def fill_task_defaults(cfg, verb: str, task: str) -> None:
    """Replace every ``None`` in a ``task_default`` field of ``cfg`` by the task's value."""
    if not verb:
        return
    table = TASK_DEFAULTS[verb]
    values = table.get(task, table["*"])
    for f in dataclasses.fields(cfg):
        if f.metadata.get("task_default") and getattr(cfg, f.name) is None:
            if f.name not in values:
                raise MroError(f"internal: no {verb} default of {f.name!r} for task {task!r}")
            value = values[f.name]
            setattr(cfg, f.name, list(value) if isinstance(value, list) else value)
