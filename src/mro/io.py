"""Files users hand to ``mro`` and folders ``mro`` writes, made safe in one place.

- :func:`read_text`, :func:`read_json`: a missing, unreadable or non-UTF-8 file (or bad JSON) is
  a one-line ``MroError`` naming the file, never a traceback.
- :func:`atomic_write_text`, :func:`atomic_write_json`, :func:`atomic_save`: write to a
  temporary file in the same folder, flush it to disk, then rename it over the target, so a
  reader or a killed run sees the old file or the new one, never half of one.
- :func:`output_folder`: check an ``--out`` value (not empty, not a file, writable) and create it.
- :class:`OutputLock` (``with OutputLock(out): ...``): one run per output folder; a second run
  gets a one-line error naming the process that holds it. The lock is ``fcntl.flock`` on
  ``<out>/.lock`` (which holds the owner's pid), so the operating system releases it when the
  process dies, however it dies: a stale lock cannot block a later run.
- :func:`read_jsonl`, :func:`repair_jsonl`: JSONL whose corrupt lines (a torn last line, a
  damaged line anywhere) are reported and dropped one by one; every valid row is kept.
  :func:`read_jsonl` reads a gzip-compressed file (``*.jsonl.gz``) too.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from mro.errors import MroError


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; ``MroError`` naming it if it is missing, unreadable or binary."""
    path = Path(path)
    if path.is_dir():
        raise MroError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise MroError(f"{what} {path} {'is not a regular file' if path.exists() else 'does not exist'}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MroError(f"{what} {path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise MroError(f"cannot read {what} {path}: {e.strerror or e}") from None


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed JSON of ``path`` (one-line ``MroError`` otherwise)."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise MroError(f"{what} {path} is not valid JSON (line {e.lineno}: {e.msg})") from None


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` by ``text`` all at once (temporary file, fsync, rename)."""
    return _atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Replace ``path`` by ``data`` as indented JSON, all at once."""
    return atomic_write_text(path, json.dumps(data, indent=2))


def atomic_save(path: str | Path, save: Callable[[Path], None]) -> Path:
    """Replace ``path`` by what ``save(tmp_path)`` writes, all at once (e.g.
    ``atomic_save(p, lambda t: torch.save(state, t))``)."""
    return _atomic(Path(path), lambda tmp: save(tmp))


def check_output_folder(out: str | Path, what: str = "--out") -> Path:
    """Check an output folder value without creating anything; one-line ``MroError`` when it is
    empty, names an existing file (or lies under one), or lies where nothing can be written."""
    if out is None or not str(out).strip():
        raise MroError(f"{what} must name a folder, got an empty value")
    path = Path(out).expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise MroError(f"{what} {out} cannot be a folder: {p} is a file")
            if not os.access(p, os.W_OK | os.X_OK):
                raise MroError(f"{what} {out} cannot be written: {p} is not writable")
            break
    return path


def output_folder(out: str | Path, what: str = "--out") -> Path:
    """Check an output folder value (:func:`check_output_folder`) and create the folder."""
    path = check_output_folder(out, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MroError(f"cannot create output folder {out}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise MroError(f"output folder {out} is not writable")
    return path


class OutputLock:
    """Exclusive use of an output folder by this process (``with OutputLock(out): ...``).

    Creates the folder (as :func:`output_folder`). A second process gets ``MroError("output
    folder X is in use by another mro run (pid N)")`` at once instead of waiting. Re-entrant in
    one process (nested ``with`` on the same folder is fine). Released on exit of the block and,
    by the operating system, when the process dies. A folder this lock created is removed again
    when the block fails before anything but the lock was written in it.
    """

    _held: dict[str, tuple[int, int]] = {}  # resolved folder -> (fd, depth), this process

    def __init__(self, out: str | Path, what: str = "--out"):
        self.out = out
        self.what = what
        self.path: Path | None = None
        self.created = False

    def __enter__(self) -> Path:
        import fcntl

        existed = check_output_folder(self.out, self.what).is_dir()
        folder = output_folder(self.out, self.what)
        self.created = not existed
        key = str(folder.resolve())
        if key in self._held:
            fd, depth = self._held[key]
            self._held[key] = (fd, depth + 1)
            self.path = folder
            return folder
        lock = folder / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise MroError(f"cannot lock output folder {self.out}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise MroError(f"output folder {self.out} is in use by another mro run (pid {pid}); "
                           "wait for it to finish or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._held[key] = (fd, 1)
        self.path = folder
        return folder

    def __exit__(self, *exc) -> None:
        import fcntl

        key = str(self.path.resolve())
        fd, depth = self._held[key]
        if depth > 1:
            self._held[key] = (fd, depth - 1)
            return
        del self._held[key]
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        if exc[0] is not None and self.created:
            try:
                if [p.name for p in self.path.iterdir()] == [".lock"]:
                    (self.path / ".lock").unlink()
                    self.path.rmdir()
            except OSError:
                pass


def _parse_lines(path: Path) -> tuple[list[dict], list[int], int]:
    """(rows, line numbers of corrupt lines, number of lines)."""
    rows, bad = [], []
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":  # a compressed log (``log.jsonl.gz``) reads like the plain one
            import gzip

            data = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise MroError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    lines = data.splitlines()
    for no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            bad.append(no)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(no)
    return rows, bad, len(lines)


def _report(path: Path, bad: list[int], action: str) -> None:
    shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    print(f"mro: warning: {path}: {len(bad)} corrupt line(s) {action} (line {shown})", file=sys.stderr)


def read_jsonl(path: str | Path, warn: bool = True) -> list[dict]:
    """The rows (JSON objects) of a JSONL file, ``[]`` if it does not exist. A corrupt line (a torn
    last line of a killed run, a damaged line anywhere) is reported on stderr and skipped alone."""
    path = Path(path)
    if not path.is_file():
        return []
    rows, bad, _ = _parse_lines(path)
    if bad and warn:
        _report(path, bad, "skipped")
    return rows


def repair_jsonl(path: str | Path) -> list[dict]:
    """Drop the corrupt lines of a JSONL file in place (reported on stderr, atomically rewritten),
    so that appending continues on a clean file; return its rows."""
    path = Path(path)
    if not path.is_file():
        return []
    if path.suffix == ".gz":
        raise MroError(f"{path} is compressed: it can be read, not repaired in place")
    rows, bad, _ = _parse_lines(path)
    data = path.read_bytes()
    if bad or (data and not data.endswith(b"\n")):
        if bad:
            _report(path, bad, "dropped")
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def append_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Append rows and flush them to disk (what is written survives an interruption)."""
    with Path(path).open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
