"""Tasks: registry, data, prompt layout, answer extraction and verifiers."""

from mro.tasks.base import Example, Task, TinyInput, get_task, register_task, task_names

__all__ = ["Example", "Task", "TinyInput", "get_task", "register_task", "task_names"]
