"""Tasks: registry, data, prompt layout, answer extraction and verifiers.

Importing the package registers the built-in tasks (each module registers itself into
:mod:`mro.tasks.registry`, which imports no task module: no import cycle).
"""

from mro.tasks.base import Example, Task, TinyInput
from mro.tasks.registry import get_task, register_task, task_names
from mro.tasks import countdown, gpqa, gsm8k, math500, sudoku  # noqa: F401,E402  (they register themselves)

__all__ = ["Example", "Task", "TinyInput", "get_task", "register_task", "task_names"]
