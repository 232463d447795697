"""Answer extraction and checking for the text benchmarks (docs/method.md section 8).

- GSM8K: numeric match. The answer span is the first ``\\boxed{}`` (else the text after the first
  ``####``, to the end of its line, else the whole text) of the last ``<answer>`` block (else of the
  whole response); its **last** number is the answer. Thousands commas, ``$``, ``%``, units and
  trailing full stops are dropped; numbers compare as exact decimals (``18.00 == 18``).
- MATH500: ``math-verify`` (symbolic equality, so ``\\frac{1}{2}`` equals ``0.5``), run in a worker
  process with a hard timeout: math-verify's own timeouts use ``signal`` and only work in the main
  thread. One worker is started on first use, reused across calls, killed and restarted when a call
  overruns; a call that overruns (or raises) counts as wrong.
- GPQA: the letter A-D of the chosen option.
- ``format_ok``: reasoning closed by ``</think>`` or ``</reasoning>``, then one ``<answer>`` block,
  then nothing (the answer-format term of ``R_q``).
"""

from __future__ import annotations

import atexit
import multiprocessing
import re
import sys
import threading
import types
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from mro.errors import MroError

#: seconds a math-verify call may take in the worker before it is killed (counts as wrong).
MATH_TIMEOUT = 10.0
#: seconds a fresh worker may take to start and import its modules.
WORKER_START_TIMEOUT = 120.0

_NUMBER = re.compile(r"(?:(?<![\w.])-)?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
_FORMAT = re.compile(r"\s*(?:<think>|<reasoning>)?.*?(?:</think>|</reasoning>)\s*<answer>(?:(?!<answer>).)*?"
                     r"</answer>\s*", re.DOTALL)
_LETTER_START = re.compile(r"\s*\(?([A-D])\)?(?:[.):]|\s|$)")
_LETTER_PHRASE = re.compile(r"answer is\s*:?\s*\(?([A-D])\)?(?![A-Za-z])", re.IGNORECASE)
_LETTER_ANY = re.compile(r"(?<![A-Za-z])\(?([A-D])\)?(?![A-Za-z])")


# --- spans -------------------------------------------------------------------------------------

def answer_block(response: str) -> str | None:
    """Content of the last ``<answer>`` block (to the end when unclosed), or ``None``."""
    start = response.rfind("<answer>")
    if start < 0:
        return None
    rest = response[start + len("<answer>"):]
    end = rest.find("</answer>")
    return rest if end < 0 else rest[:end]


def boxed(text: str) -> str | None:
    """Content of the first ``\\boxed{...}`` (or ``\\fbox{...}``), braces matched; ``None`` if none."""
    match = re.search(r"\\(?:boxed|fbox)\s*{", text)
    if not match:
        return None
    depth, start = 1, match.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return text[start:]


def format_ok(response: str) -> bool:
    """True when reasoning is closed, then one ``<answer>...</answer>`` block ends the response."""
    return _FORMAT.fullmatch(response) is not None


# --- GSM8K -------------------------------------------------------------------------------------

def parse_number(text: str) -> Decimal | None:
    """The last number in ``text`` as an exact decimal (commas dropped), or ``None``."""
    found = _NUMBER.findall(text.replace("\\!", "").replace("{,}", ","))
    if not found:
        return None
    try:
        return Decimal(found[-1].replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
        return None


def canonical_number(value: Decimal) -> str:
    """``Decimal('1080.00')`` -> ``'1080'``; ``Decimal('-0.50')`` -> ``'-0.5'``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def gsm8k_span(response: str) -> str:
    """The text holding the answer (see the module docstring)."""
    text = answer_block(response)
    text = response if text is None else text
    inside = boxed(text)
    if inside is not None:
        return inside
    if "####" in text:
        return text.split("####", 1)[1].split("\n", 1)[0] or text.split("####", 1)[1]
    return text


def gsm8k_extract(response: str) -> str | None:
    """The answer of a GSM8K response as a canonical number string, or ``None``."""
    value = parse_number(gsm8k_span(response))
    return None if value is None else canonical_number(value)


def gsm8k_gold(answer: Any) -> str | None:
    """The reference number of a GSM8K answer field (``... #### 1,080`` or a bare number)."""
    text = str(answer)
    value = parse_number(text.split("####")[-1])
    return None if value is None else canonical_number(value)


def gsm8k_equal(gold: str, response: str) -> bool:
    pred = gsm8k_extract(response)
    return pred is not None and Decimal(pred) == Decimal(gold)


# --- GPQA --------------------------------------------------------------------------------------

def letter_extract(response: str) -> str | None:
    """The chosen option letter A-D: from the answer block (or a ``\\boxed{}``), else an
    ``answer is X`` phrase in the response; ``None`` when there is none."""
    block = answer_block(response)
    for span in (block, boxed(block or response)):
        if span is None:
            continue
        for pattern in (_LETTER_START, _LETTER_PHRASE, _LETTER_ANY):
            match = pattern.match(span) if pattern is _LETTER_START else pattern.search(span)
            if match:
                return match.group(1)
    phrases = _LETTER_PHRASE.findall(response)
    return phrases[-1] if phrases else None


# --- MATH500: math-verify in a worker process --------------------------------------------------

def _serve(conn, preload: tuple[str, ...]) -> None:
    """Worker loop: import ``preload``, say ready, then run ``(fn, args)`` calls until EOF."""
    import importlib

    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    conn.send("ready")
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as e:  # the call did not unpickle here (e.g. a module the worker lacks)
            conn.send((False, f"cannot load the call: {type(e).__name__}: {e}"))
            continue
        try:
            conn.send((True, fn(*args)))
        except Exception as e:  # reported to the caller, the worker lives on
            conn.send((False, f"{type(e).__name__}: {e}"))


class TimeoutWorker:
    """One reusable worker process running picklable calls with a hard timeout.

    The worker is spawned on first use; a call that overruns ``timeout`` kills it (the next call
    starts a fresh one) and raises ``TimeoutError``; an exception in the call raises
    ``RuntimeError`` with its one-line description. Calls are serialised by a lock.
    """

    def __init__(self, preload: tuple[str, ...] = ()):
        self.preload = preload
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.preload), daemon=True, name="mro-checker")
        # A spawned child re-imports the parent's __main__; a user script without an
        # ``if __name__ == "__main__":`` guard would then rerun itself there and the start fails.
        # The worker needs nothing from __main__, so it is started with a bare one.
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            proc.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main
        child.close()
        try:
            ok = parent.poll(WORKER_START_TIMEOUT) and parent.recv() == "ready"
        except (EOFError, OSError):
            ok = False
        if not ok:  # not a wrong answer: every answer would be scored wrong without the checker
            proc.kill()
            raise MroError(f"the answer checker's worker process did not start within {WORKER_START_TIMEOUT:.0f} s "
                           f"(exit code {proc.exitcode})")
        self._proc, self._conn = proc, parent

    def run(self, fn: Callable, *args, timeout: float) -> Any:
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._start()
            try:
                self._conn.send((fn, args))
                ready = self._conn.poll(timeout)
                result = self._conn.recv() if ready else None
            except (EOFError, OSError):  # the worker died mid-call
                ready, result = False, None
            if not ready:
                self.close()
                raise TimeoutError(f"call did not finish within {timeout} s")
            ok, value = result
            if not ok:
                raise RuntimeError(value)
            return value

    def close(self) -> None:
        """Stop the worker now (it is restarted on the next call)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._conn.close()
        self._proc, self._conn = None, None


_WORKER = TimeoutWorker(preload=("math_verify",))
atexit.register(_WORKER.close)


def math_span(response: str) -> str:
    """What math-verify reads: the last answer block (``$``-wrapped when it has no LaTeX anchor),
    else the whole response (math-verify then prefers its last ``\\boxed{}``)."""
    block = answer_block(response)
    if block is None:
        return response
    block = block.strip()
    return block if ("\\boxed" in block or "$" in block) else f"${block}$"


def _math_verify(gold: str, span: str) -> bool:
    """math-verify's verdict (runs in the worker, where its own signal timeouts also work)."""
    from math_verify import parse, verify

    target = parse(span)
    return bool(target) and bool(verify(parse(f"\\boxed{{{gold}}}"), target))


def math_equal(gold: str, response: str, timeout: float = MATH_TIMEOUT,
               fn: Callable[[str, str], bool] = _math_verify) -> bool:
    """True when ``response``'s answer equals ``gold`` (LaTeX); overruns and errors are False.

    ``fn(gold, span)`` is the check run in the worker (module-level, so it pickles).
    """
    try:
        return bool(_WORKER.run(fn, gold, math_span(response), timeout=timeout))
    except (TimeoutError, RuntimeError):
        return False
