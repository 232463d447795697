"""Countdown: reach a target with + - * / using each given number exactly once.

Spec section 6 (Countdown@64/128 in the paper, the ``Jiayi-Pan/Countdown-Tasks-3to4`` shape in
d1). The generator emits only solvable problems: it builds a random expression over the drawn
numbers (exact arithmetic, every intermediate value a positive integer) and takes its value as the
target. The verifier parses answers with ``ast`` and a whitelist of node types; it never evaluates
model text as Python. Data files (JSONL, or a ``.json`` list) come in the shapes of :data:`SHAPES`:
``nums`` (list of ints) and ``target`` (int); d1's test set (``countdown_cd3_test.jsonl``):
``input`` ("44,19,35") and ``output`` ("98"); Dream's: ``input`` ("15,44,79,50", the last number
is the target) and ``output`` (a worked solution, "44-15=29,79-29=50"). Each record's shape is
read from its keys and values.
"""

from __future__ import annotations

import ast
import json
import operator
import random
import re
from fractions import Fraction
from pathlib import Path
from typing import NoReturn, Union

from mro.errors import MroError
from mro.io import read_text
from mro.tasks.checkers import boxed
from mro.tasks.example import generation_bar
from mro.tasks.base import Example, Task, TinyInput, heldout_bucket, last_answer_block, register_task
from mro.tasks.protocols import COUNTDOWN_QUESTION as QUESTION

MAX_SOLUTION_LENGTH = 20
MAX_ANSWER_LENGTH = 200
_ALLOWED_CHARS = frozenset("0123456789 +-*/()")
_BIN_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_OP_NODES = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div}
#: LaTeX operators a ``\\boxed{}`` answer may use, as the parser's ASCII ones.
_LATEX_OPS = {"\\times": "*", "\\cdot": "*", "\\div": "/", "\\left(": "(", "\\right)": ")"}
#: consecutive rejected draws after which ``generate`` gives up (options leave too few problems).
_MAX_FAILED_DRAWS = 100_000
#: an expression tree: a number, or (operator, left, right).
Node = Union[int, tuple]
#: how a generated problem's recorded solution (what a tiny model trains on) is written
LAYOUTS = ("expression", "chain", "chain-padded")
#: a worked chain, Dream's shape: ``lhs=value`` steps separated by commas, the last step's
#: ``=value`` optional (``044-015=029,079-029`` ends on the answer's expression)
_CHAIN = re.compile(r"^\s*[\d\s+\-*/()]+=\s*\d+\s*(,\s*[\d\s+\-*/()]+=\s*\d+\s*)*"
                    r",\s*[\d\s+\-*/()]+(=\s*\d+\s*)?$")
#: digits of every number in the ``chain-padded`` layout
PAD = 3
_NUMBER = re.compile(r"\d+")
_LEADING_ZEROS = re.compile(r"(?<!\d)0+(\d)")


def render(node: Node) -> str:
    """The expression with minimal parentheses and no spaces, e.g. ``(12+3)*4-7``."""
    if isinstance(node, int):
        return str(node)
    op, left, right = node
    left_s, right_s = render(left), render(right)
    if _precedence(left) < _PRECEDENCE[op]:
        left_s = f"({left_s})"
    right_prec = _precedence(right)
    if right_prec < _PRECEDENCE[op] or (right_prec == _PRECEDENCE[op] and op in "-/"):
        right_s = f"({right_s})"
    return f"{left_s}{op}{right_s}"


def render_chain(node: Node, padded: bool = False) -> str:
    """The solution as a worked chain, one operation per step in the order it is computed
    (Dream's shape): ``79-(44-15)`` -> ``44-15=29,79-29=50``.

    ``padded``: every number zero-padded to :data:`PAD` digits, so each character has a fixed
    place, and the last step without its ``=target`` (the target is in the prompt):
    ``044-015=029,079-029``.
    """
    steps: list[str] = []

    def number(v: int) -> str:
        return str(v).zfill(PAD) if padded else str(v)

    def walk(n: Node) -> int:
        if isinstance(n, int):
            return n
        op, left, right = n
        a, b = walk(left), walk(right)
        value = int(_BIN_OPS[_OP_NODES[op]](Fraction(a), Fraction(b)))
        steps.append(f"{number(a)}{op}{number(b)}={number(value)}")
        return value

    walk(node)
    if not steps:
        return number(node)
    if padded:
        steps[-1] = steps[-1].split("=")[0]
    return ",".join(steps)


def chain_expression(text: str) -> str | None:
    """The single expression a worked chain stands for, or None when ``text`` is not a chain.

    ``44-15=29,79-29=50`` -> ``79-(44-15)``: each step's value must be what its left side
    computes (a false step makes the chain an unparsable answer, returned as it is), and each
    later occurrence of an earlier step's value stands for that step (an intermediate is used
    once; a number equal to no unused intermediate is a given number). The last step is the
    answer; its ``=value`` may be left out. Zero-padded numbers (``044``) read as numbers.
    """
    if not _CHAIN.match(text):
        return None
    text = _LEADING_ZEROS.sub(r"\1", text)
    pending: list[tuple[int, str]] = []  # (value, expression) of steps not used yet
    expression = ""
    for step in text.split(","):
        lhs, _, rhs = (part.strip() for part in step.partition("="))
        try:
            value, _ = parse_expression(lhs)
        except MroError:
            return text
        if rhs and value != int(rhs):
            return text

        def substitute(match: re.Match) -> str:
            for i, (v, expr) in enumerate(pending):
                if v == int(match.group()):
                    del pending[i]
                    return f"({expr})"
            return match.group()

        expression = _NUMBER.sub(substitute, lhs.replace(" ", ""))
        pending.append((int(value) if value.denominator == 1 else -1, expression))
    return expression


#: one finished step of a worked chain: ``a op b = c`` (``=c`` may be missing on the last step)
_STEP = re.compile(r"^\s*(\d+)\s*([+\-*/])\s*(\d+)\s*(?:=\s*(\d+)\s*)?$")


def chain_progress(text: str, nums: list[int], target: int) -> int:
    """How many leading steps of the worked chain ``text`` are finished and correct.

    A step counts when it is ``a op b = c`` (``a op b`` alone only as the ``len(nums) - 1``-th
    step, the last one needed), both operands are available (a given number or an earlier step's
    value, each used once), and ``c`` is exactly ``a op b`` (an integer: division must be exact);
    the ``len(nums) - 1``-th step, which uses up the last numbers, counts only if its value is
    ``target``. Anything else (a hole, a longer expression, a false step) ends the count.
    Zero-padded numbers (``044``) read as numbers.
    """
    pool = list(nums)  # the values still available
    needed = len(nums) - 1
    done = 0
    for step in text.split(",")[:needed]:
        match = _STEP.match(step)
        if match is None:
            break
        a, op, b, c = match.groups()
        a, b = int(a), int(b)
        last = done + 1 == needed
        if c is None and not last:
            break
        if a not in pool:
            break
        pool.remove(a)
        if b not in pool:
            break
        pool.remove(b)
        if op == "/" and (b == 0 or a % b):
            break
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
        if (c is not None and int(c) != value) or (last and value != target):
            break
        pool.append(value)
        done += 1
    return done


def _precedence(node: Node) -> int:
    return 3 if isinstance(node, int) else _PRECEDENCE[node[0]]


def _combine(rng: random.Random, a: tuple[int, Node], b: tuple[int, Node]) -> tuple[int, Node]:
    """A random operation on two (value, tree) pairs whose result is a positive integer.

    The larger value goes left, so subtraction and division are tried in the orientation that can
    stay a positive integer.
    """
    (va, na), (vb, nb) = sorted((a, b), key=lambda pair: pair[0], reverse=True)
    choices = [(va + vb, ("+", na, nb)), (va * vb, ("*", na, nb))]
    if va > vb:
        choices.append((va - vb, ("-", na, nb)))
    if va % vb == 0:
        choices.append((va // vb, ("/", na, nb)))
    return rng.choice(choices)


def random_solution(rng: random.Random, nums: list[int]) -> tuple[int, Node]:
    """Combine random pairs until one (value, tree) remains; every number is used once."""
    pool = [(v, v) for v in nums]
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        combined = _combine(rng, pool[i], pool[j])
        pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [combined]
    return pool[0]


def parse_expression(text: str) -> tuple[Fraction, list[int]]:
    """Exact value and the numbers used of an arithmetic answer (+ - * / and parentheses).

    Parsed with ``ast`` and walked over a whitelist of node types; anything else raises a one-line
    ``MroError``. Nothing is ever evaluated as Python.
    """
    if len(text) > MAX_ANSWER_LENGTH:
        _reject(f"longer than {MAX_ANSWER_LENGTH} characters")
    bad = sorted(set(text) - _ALLOWED_CHARS)
    if bad:
        _reject(f"characters {''.join(bad)!r} are not allowed")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        _reject(f"syntax error ({e.msg})")
    numbers: list[int] = []
    return _evaluate(tree.body, numbers), numbers


def _evaluate(node: ast.AST, numbers: list[int]) -> Fraction:
    """Exact value of a whitelisted node; appends the numbers it uses (literals are never negative)."""
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:
            _reject(f"{node.value!r} is not an integer")
        numbers.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp):
        op = _BIN_OPS.get(type(node.op))
        if op is None:
            _reject(f"operator {type(node.op).__name__} is not allowed")
        left, right = _evaluate(node.left, numbers), _evaluate(node.right, numbers)
        if op is operator.truediv and right == 0:
            _reject("division by zero")
        return op(left, right)
    _reject(f"{type(node).__name__} is not allowed")


def _reject(reason: str) -> NoReturn:
    raise MroError(f"countdown answer is not an arithmetic expression: {reason}")


def _counts(n_numbers: int | tuple[int, ...]) -> tuple[int, ...]:
    counts = (n_numbers,) if isinstance(n_numbers, int) else tuple(n_numbers)
    if not counts or any(type(c) is not int or c < 2 for c in counts):
        raise MroError(f"n_numbers must be an integer >= 2 or a list of them, got {n_numbers!r}")
    return counts


def _check_options(split: str, min_number: int, max_number: int, max_target: int) -> None:
    if split not in ("train", "test"):
        raise MroError(f"split must be 'train' or 'test', got {split!r}")
    if not 1 <= min_number <= max_number:
        raise MroError(f"countdown needs 1 <= min_number <= max_number, got {min_number}, {max_number}")
    if max_target < 1:
        raise MroError(f"countdown max_target must be >= 1, got {max_target}")


def _key(nums: list[int], target: int) -> str:
    """Canonical string of a problem (sorted numbers and target) for the held-out split."""
    return ",".join(map(str, sorted(nums))) + f">{target}"


def _example(example_id: str, nums: list[int], target: int, solution: str | None = None) -> Example:
    data = {"nums": nums, "target": target}
    if solution is not None:
        data["solution"] = solution
    question = QUESTION.format(nums=nums, target=target)
    return Example(id=example_id, question=question, answer=target, data=data)


#: the record shapes a countdown data file may hold (named in the error for any other shape)
SHAPES = ('{"nums": [44, 19, 35], "target": 98}', 'd1\'s {"input": "44,19,35", "output": "98"}',
          'Dream\'s {"input": "15,44,79,50", "output": "44-15=29,79-29=50"} (the last input number is the target)')


def _parse_record(record) -> tuple[list[int], int]:
    """``nums`` and ``target`` of one JSON object (any of :data:`SHAPES`), or ``MroError`` (no location)."""
    if not isinstance(record, dict):
        raise MroError(f"expected an object with 'nums' and 'target', got {type(record).__name__}")
    if "nums" not in record and "target" not in record and ("input" in record or "output" in record):
        return _parse_d1_record(record)
    if "nums" not in record and "target" not in record:
        raise MroError(f"unknown countdown record shape with keys {sorted(map(str, record))}; "
                       f"expected one of: {'; '.join(SHAPES)}")
    for key in ("nums", "target"):
        if key not in record:
            raise MroError(f"missing key {key!r} (expected 'nums' and 'target', or d1's 'input' and 'output')")
    nums, target = record["nums"], record["target"]
    if not isinstance(nums, list) or not nums or any(type(v) is not int for v in nums):
        raise MroError(f"'nums' must be a non-empty list of integers, got {nums!r}")
    if type(target) is not int:
        raise MroError(f"'target' must be an integer, got {target!r}")
    return _check_numbers(nums), target


def _check_numbers(nums: list[int]) -> list[int]:
    """Countdown numbers are positive: 0 or a negative number makes another game."""
    bad = [v for v in nums if v < 1]
    if bad:
        raise MroError(f"countdown numbers must be positive integers, got {bad[0]} in {nums}")
    return nums


def _parse_d1_record(record: dict) -> tuple[list[int], int]:
    """d1's shape: ``input`` = comma-separated numbers (``"44,19,35"``), ``output`` = the target;
    Dream's: ``input`` = the numbers then the target (``"15,44,79,50"``), ``output`` = a worked
    solution (``"44-15=29,79-29=50"``, told apart by its ``=``)."""
    for key in ("input", "output"):
        if key not in record:
            raise MroError(f"missing key {key!r} (d1's and Dream's shapes have 'input' and 'output')")
    text, output = record["input"], record["output"]
    try:
        nums = [int(v) for v in text.split(",")] if isinstance(text, str) else []
    except ValueError:
        nums = []
    if not nums:
        raise MroError(f"'input' must be comma-separated integers like '44,19,35', got {text!r}")
    if isinstance(output, str) and "=" in output:  # Dream's shape: the last input number is the target
        if len(nums) < 2:
            raise MroError(f"Dream's 'input' holds the numbers then the target, got {text!r}")
        return _check_numbers(nums[:-1]), nums[-1]
    try:
        target = int(output) if isinstance(output, (str, int)) and not isinstance(output, bool) else None
    except ValueError:
        target = None
    if target is None:
        raise MroError(f"'output' must be an integer like '98', got {output!r}")
    return _check_numbers(nums), target


def _records(file: Path):
    """(location, parsed JSON) pairs of a ``.json`` list or a JSONL file."""
    text = read_text(file, "countdown data file")
    if file.suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise MroError(f"{file}:{e.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(items, list):
            raise MroError(f"{file}:1: expected a JSON list of problems")
        yield from ((f"{file}: item {i}", item) for i, item in enumerate(items))
        return
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{file}:{line_no}", json.loads(line)
        except json.JSONDecodeError as e:
            raise MroError(f"{file}:{line_no}: invalid JSON ({e.msg})") from None


@register_task
class CountdownTask(Task):
    """Countdown; the reference answer is the target, any valid expression reaching it scores."""

    name = "countdown"
    metrics = ("correct",)
    tiny_gen_length = MAX_SOLUTION_LENGTH

    def generate(
        self,
        n: int,
        seed: int,
        split: str = "test",
        n_numbers: int | tuple[int, ...] = 3,
        min_number: int = 1,
        max_number: int = 100,
        max_target: int = 100,
        layout: str = "expression",
    ) -> list[Example]:
        """``n`` distinct solvable problems of one split, each with a recorded solution written as
        ``layout``: ``expression`` (``79-(44-15)``), ``chain`` (``44-15=29,79-29=50``) or
        ``chain-padded`` (``044-015=029,079-029``); a problem whose solution is longer than the
        tiny model's response is drawn again."""
        counts = _counts(n_numbers)
        _check_options(split, min_number, max_number, max_target)
        if layout not in LAYOUTS:
            raise MroError(f"countdown layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        write = {"expression": render, "chain": render_chain,
                 "chain-padded": lambda tree: render_chain(tree, padded=True)}[layout]
        rng = random.Random(seed)
        seen: set[str] = set()
        examples: list[Example] = []
        failed = 0
        bar = generation_bar(n, self.name)
        while len(examples) < n:
            nums = [rng.randint(min_number, max_number) for _ in range(rng.choice(counts))]
            target, tree = random_solution(rng, nums)
            solution, key = write(tree), _key(nums, target)
            if (
                target > max_target
                or len(solution) > MAX_SOLUTION_LENGTH
                or key in seen
                or heldout_bucket(key) != (split == "test")
            ):
                failed += 1
                if failed > _MAX_FAILED_DRAWS:
                    raise MroError(
                        f"could not generate {n} distinct countdown problems for split {split!r} "
                        "with these options; ask for fewer or widen the ranges"
                    )
                continue
            failed = 0
            seen.add(key)
            examples.append(_example(f"countdown-{seed}-{len(examples)}", nums, target, solution))
            bar.update(1)
        bar.close()
        return examples

    def load(self, path: str) -> list[Example]:
        """JSONL (or a ``.json`` list) of objects in any of :data:`SHAPES`: ``nums`` (list of ints)
        and ``target`` (int); d1's ``input`` (``"44,19,35"``) and ``output`` (``"98"``); Dream's
        ``input`` (``"15,44,79,50"``, target last) and ``output`` (``"44-15=29,79-29=50"``)."""
        file = Path(path)
        if not file.is_file():
            raise MroError(f"countdown data file {path} does not exist")
        examples = []
        for location, record in _records(file):
            try:
                nums, target = _parse_record(record)
            except MroError as e:
                raise MroError(f"{location}: {e}") from None
            examples.append(_example(f"{file.stem}-{len(examples)}", nums, target))
        return examples

    def tiny_input(self, example: Example, tokenizer) -> TinyInput:
        """Prompt ``<bos>3,4,12>41:``; the response is all masks."""
        nums, target = example.data["nums"], example.data["target"]
        prompt = ",".join(map(str, nums)) + f">{target}:"
        return TinyInput(
            prompt_ids=[tokenizer.bos_token_id] + tokenizer.encode(prompt),
            response_ids=[tokenizer.mask_token_id] * self.tiny_gen_length,
        )

    def tiny_target(self, example: Example, tokenizer) -> TinyInput:
        """The recorded solution followed by ``<eos>`` padding."""
        solution = example.data.get("solution")
        if solution is None:
            raise MroError(f"countdown example {example.id} has no reference solution to train on")
        ids = tokenizer.encode(solution)
        if len(ids) > self.tiny_gen_length:
            raise MroError(f"countdown solution {solution!r} is longer than {self.tiny_gen_length}")
        padding = [tokenizer.eos_token_id] * (self.tiny_gen_length - len(ids))
        return TinyInput(self.tiny_input(example, tokenizer).prompt_ids, ids + padding)

    def extract(self, response: str) -> str | None:
        """The expression of the (last ``<answer>`` block of the) response, left of any ``=``; a
        worked chain (``44-15=29,79-29=50``, Dream's shape) reads as the expression it computes
        (:func:`chain_expression`).

        A ``\\boxed{...}`` in it (d1's format) is unwrapped and its LaTeX operators (``\\times``,
        ``\\cdot``, ``\\div``) read as ``*`` and ``/``.
        """
        text = last_answer_block(response)
        inner = boxed(text)
        if inner is not None:
            text = inner
            for latex, op in _LATEX_OPS.items():
                text = text.replace(latex, op)
        chained = chain_expression(text)
        if chained is not None:
            return chained
        text = text.strip().split("=")[0].strip()
        return text or None

    def format_score(self, response: str, example: Example | None = None) -> float:
        """1.0 when the answer is a parseable arithmetic expression (over the example's numbers,
        each used at most once, when the example is given), else 0.0: text that merely
        extracts (prose, code) earns no format credit."""
        expression = self.extract(response)
        if expression is None:
            return 0.0
        try:
            _, used = parse_expression(expression)
        except MroError:
            return 0.0
        if example is not None:
            pool = list(example.data["nums"])
            for v in used:
                if v not in pool:
                    return 0.0
                pool.remove(v)
        return 1.0

    def same_answer(self, a: str | None, b: str | None) -> bool:
        """Whether two answers mean the same: the same exact value from the same numbers (as a
        multiset), however written (``3+4``, ``4+3`` and ``(4)+3`` are one answer; ``5+2`` is
        another). Text that does not parse as an expression compares by its characters, spaces
        ignored. The majority vote of test-time scaling counts answers through this."""
        if a is None or b is None:
            return a is b
        try:
            (va, used_a), (vb, used_b) = parse_expression(a), parse_expression(b)
        except MroError:
            return "".join(a.split()) == "".join(b.split())
        return va == vb and sorted(used_a) == sorted(used_b)

    #: how a still-masked position is written in a state's text (never part of an answer)
    hole = "?"

    def potential(self, example: Example, state: str) -> float:
        """The SGRO potential ``Phi`` of a state (docs/method.md section 4): the fraction of the
        ``n - 1`` steps of the worked chain (``44-15=29,79-29=50``, :func:`render_chain`; for ``n``
        given numbers) that are finished and correct, counted from the first step up to the first
        that is not (:func:`chain_progress`): still-masked positions are written as :attr:`hole`,
        so a step with a hole is unfinished, and the step that uses up the last numbers counts
        only if it reaches the target.

        A response that is a correct answer (a chain or a plain expression like ``79-(44-15)``)
        gets exactly 1.0, and anything else less: on a finished response ``Phi == 1`` exactly
        when ``correct``. A plain expression, an empty or all-hole state gets its correctness.
        """
        if self.score(example, state)["correct"] == 1.0:
            return 1.0
        nums = example.data["nums"]
        if len(nums) < 2:
            return 0.0
        text = last_answer_block(state)
        inner = boxed(text)
        done = chain_progress(inner if inner is not None else text, nums, example.data["target"])
        return min(done, len(nums) - 2) / (len(nums) - 1)

    def score(self, example: Example, response: str) -> dict[str, float]:
        """``correct`` is 1 when the expression uses exactly the given numbers and hits the target."""
        expression = self.extract(response)
        if expression is None:
            return {"correct": 0.0}
        try:
            value, used = parse_expression(expression)
        except MroError:
            return {"correct": 0.0}
        ok = sorted(used) == sorted(example.data["nums"]) and value == example.data["target"]
        return {"correct": float(ok)}
