"""The task package has no import cycle: task modules register into a registry that imports none."""

import ast
from pathlib import Path

import mro.tasks
from mro.tasks import get_task, registry, task_names

PACKAGE = Path(mro.tasks.__file__).parent


def _imports(path: Path) -> set[str]:
    """``mro.tasks`` modules a file imports anywhere (in functions too), except under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mro.tasks"):
            if node.module == "mro.tasks":
                out |= {f"mro.tasks.{a.name}" if (PACKAGE / f"{a.name}.py").exists() else "mro.tasks"
                        for a in node.names}
            else:
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mro.tasks")}
    return out


def test_no_import_cycle_in_tasks():
    graph = {("mro.tasks" if p.name == "__init__.py" else f"mro.tasks.{p.stem}"): _imports(p)
             for p in PACKAGE.glob("*.py")}
    # importing a submodule runs the package first: the package may import every module, no module the package
    assert not [m for m, deps in graph.items() if m != "mro.tasks" and "mro.tasks" in deps]
    done, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(m):] + [m])}")
        if m in done:
            return
        stack.append(m)
        for d in graph.get(m, ()):
            visit(d)
        stack.pop()
        done.add(m)

    for m in graph:
        visit(m)
    assert not _imports(PACKAGE / "registry.py")  # the registry imports no task module


def test_every_builtin_task_is_registered():
    assert task_names() == ["countdown", "gpqa", "gsm8k", "math500", "sudoku"]
    assert set(registry._REGISTRY) == set(task_names())
    assert get_task("sudoku").name == "sudoku"
