"""Training recipes as data: ``configs/recipes/<task>/<verb>/<name>.yaml``, each loadable by
``mro train <verb> --config <file>``; here they become configs through ``mro.config.build`` (the
loader the CLI uses: YAML under explicit overrides, the same checks) and run in-process.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mro.config import build
from mro.errors import MroError

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "recipes"
#: verb -> (module, config class, trainer function), as ``mro train <verb>`` calls them (src/mro/cli.py)
TRAINERS = {
    "sft": ("mro.train.sft", "SFTConfig", "train_sft"),
    "ar": ("mro.train.ppl_scorer", "ARConfig", "train_ar"),
    "rs": ("mro.train.rejection", "RSConfig", "train_rs"),
    "rl": ("mro.train.rl", "RLConfig", "train_rl"),
}


def recipe(task: str, name: str) -> Path:
    """The recipe file ``configs/recipes/<task>/<verb>/<name>.yaml`` (whatever its verb)."""
    found = sorted((RECIPES / task).glob(f"*/{name}.yaml"))
    if len(found) != 1:
        raise MroError(f"expected one recipe {task}/*/{name}.yaml under {RECIPES}, found {len(found)}")
    return found[0]


def verb(path: Path) -> str:
    """The ``mro train`` verb of a recipe: the name of its folder."""
    v = Path(path).parent.name
    if v not in TRAINERS:
        raise MroError(f"recipe {path} is not in a folder named after a verb ({', '.join(TRAINERS)})")
    return v


def _trainer(v: str):
    module, cls, fn = TRAINERS[v]
    mod = importlib.import_module(module)
    return getattr(mod, cls), getattr(mod, fn)


def load(path: Path, **overrides):
    """The config of a recipe with ``overrides`` (field name -> value) on top, as
    ``mro train <verb> --config <path> --<field> <value> ...`` builds it."""
    cls, _ = _trainer(verb(path))
    return build(cls, {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}, str(path))


def train(path: Path, **overrides) -> Path:
    """Run the recipe in this process (``train_rl(cfg)`` etc.); the trainer's returned model folder."""
    _, fn = _trainer(verb(path))
    return Path(fn(load(path, **overrides)))


def command(path: Path, **overrides) -> str:
    """The equivalent command line, paths relative to the repository."""
    def show(v):
        v = str(v).replace(str(REPO) + "/", "")
        return v.lower() if v in ("True", "False") else v

    flags = [f"--{k.replace('_', '-')} {show(v)}" for k, v in overrides.items()]
    return " ".join([f"mro train {verb(path)} --config {show(path)}", *flags])
