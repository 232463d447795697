"""The task registry: task modules register into it; it imports no task module.

``mro.tasks`` (the package) imports every built-in task module, and importing any submodule
imports the package first, so the registry is filled before anything can ask it for a task.
There is no import cycle: ``registry`` and ``example`` import nothing from ``mro.tasks``; ``base``
imports them and ``protocols``; task modules import ``base``; the package imports them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mro.errors import MroError

if TYPE_CHECKING:
    from mro.tasks.base import Task

_REGISTRY: dict[str, type] = {}


def register_task(cls: "type[Task]") -> "type[Task]":
    """Class decorator: make a task available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str, **options) -> "Task":
    """The task called ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in _REGISTRY:
        raise MroError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)
