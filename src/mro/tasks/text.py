"""What the text benchmarks (gsm8k, math500, gpqa) share: data from files or the hub.

``load(path)`` reads a local JSONL / JSON / Parquet / CSV file through ``datasets`` and names the
expected and missing columns when some are absent; ``load_hub(split)`` fetches the public test set
with ``datasets.load_dataset`` (from the cache alone when :func:`mro.hub.hub_offline`) and, when
that fails, says to pass a local file instead. These tasks have no built-in tiny-model layout;
prompts come from a protocol (:mod:`mro.tasks.protocols`).
"""

from __future__ import annotations

import tempfile
from abc import abstractmethod
from pathlib import Path

from mro.errors import MroError
from mro.tasks.base import Example, Task, TinyInput
from mro.tasks.checkers import format_ok

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _datasets():
    try:
        import datasets
    except ImportError:
        raise MroError("reading benchmark files needs datasets: pip install 'mro[hf]'") from None
    return datasets


def _first_line(error: BaseException) -> str:
    """First line of the innermost cause (datasets wraps parse errors in a generic one)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def read_rows(path: str, columns: tuple[str, ...], task: str) -> list[dict]:
    """Rows of a local data file as dicts; one-line errors for a missing file, an unknown
    format, an unreadable file, or missing columns (named, with the expected ones)."""
    file = Path(path)
    if not file.is_file():
        raise MroError(f"{task} data file {path} does not exist")
    builder = FORMATS.get(file.suffix.lower())
    if builder is None:
        raise MroError(f"{path}: unknown data format {file.suffix!r}; use {', '.join(FORMATS)}")
    datasets = _datasets()
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    # a throwaway cache: local files are read once, and the user's datasets cache stays clean
    with tempfile.TemporaryDirectory(prefix="mro-data-") as cache:
        try:
            table = datasets.load_dataset(builder, data_files=str(file), split="train", cache_dir=cache)
            return _check_columns(table, columns, task, str(path))
        except MroError:
            raise
        except Exception as e:  # pyarrow / pandas parse errors
            raise MroError(f"{path}: cannot read as {builder} ({_first_line(e)})") from None
        finally:
            if bars:
                datasets.utils.logging.enable_progress_bar()


def _check_columns(table, columns: tuple[str, ...], task: str, where: str) -> list[dict]:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise MroError(f"{where}: missing column(s) {', '.join(map(repr, missing))}; {task} expects "
                       f"{', '.join(map(repr, columns))} (found {', '.join(map(repr, table.column_names))})")
    return table.to_list()


def hub_rows(hub_id: str, config: str | None, split: str, columns: tuple[str, ...], task: str) -> list[dict]:
    """Rows of a hub data set; unreachable (offline, gated) -> one line saying to pass a file."""
    from mro.hub import hub_offline

    datasets = _datasets()
    offline = hub_offline()
    # offline: datasets goes straight to its cache instead of retrying the hub for ~25 s (the flag
    # is HF_HUB_OFFLINE in datasets >= 3, HF_DATASETS_OFFLINE before)
    flags = {k: getattr(datasets.config, k) for k in _OFFLINE_FLAGS if hasattr(datasets.config, k)}
    for k, v in flags.items():
        setattr(datasets.config, k, v or offline)
    try:
        table = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:
        name = hub_id + (f" ({config})" if config else "")
        why = "not cached, and the hub is unreachable" if offline else type(e).__name__
        raise MroError(
            f"cannot load {name} split {split!r} from the Hugging Face hub ({why}); "
            f"save it where you have access and pass the local file instead (JSONL, Parquet or CSV "
            f"with columns {', '.join(map(repr, columns))})"
        ) from None
    finally:
        for k, v in flags.items():
            setattr(datasets.config, k, v)
    return _check_columns(table, columns, task, hub_id)


class TextTask(Task):
    """A benchmark read from data (no generator by default, no tiny layout).

    Subclasses set ``columns`` (required in a data file), ``hub`` (``(id, config, split)``) and
    implement :meth:`example` (one row -> :class:`Example`) and :meth:`score`.
    """

    metrics = ("accuracy", "format")
    columns: tuple[str, ...] = ()
    hub: tuple[str, str | None, str] = ("", None, "test")

    @abstractmethod
    def example(self, row: dict, index: int, source: str) -> Example:
        """One data row as an example; a bad row raises ``MroError`` naming ``source`` and ``index``."""

    def generate(self, n: int, seed: int, split: str = "test", **options) -> list[Example]:
        raise MroError(f"{self.name} has no generator: load a data file with columns "
                       f"{', '.join(map(repr, self.columns))} (JSONL, Parquet or CSV)")

    def load(self, path: str) -> list[Example]:
        """A local JSONL / JSON / Parquet / CSV file with the task's ``columns``."""
        rows = read_rows(path, self.columns, self.name)
        return [self.example(row, i, Path(path).stem) for i, row in enumerate(rows)]

    def load_hub(self, split: str | None = None, hub_id: str | None = None,
                 config: str | None = None) -> list[Example]:
        """A data set from the Hugging Face hub: the task's public one by default (``split``
        defaults to its test split), or ``hub_id`` (with ``config``) holding the task's columns."""
        default_id, default_config, default = self.hub
        if hub_id is None or hub_id == default_id:
            hub_id, config = default_id, config if config is not None else default_config
        split = split or default
        rows = hub_rows(hub_id, config, split, self.columns, self.name)
        source = hub_id.split("/")[-1] + (f"-{config}" if config else "") + f"-{split}"
        return [self.example(row, i, source) for i, row in enumerate(rows)]

    def format_score(self, response: str) -> float:
        """1.0 for reasoning closed by ``</think>``/``</reasoning>`` then one ``<answer>`` block."""
        return float(format_ok(response))

    def tiny_input(self, example: Example, tokenizer) -> TinyInput:
        raise MroError(f"{self.name} is a text task with no tiny-model layout; use a Hugging Face "
                       "model (LLaDA, Dream, a masked LM)")

    def tiny_target(self, example: Example, tokenizer) -> TinyInput:
        return self.tiny_input(example, tokenizer)
