"""4x4 Sudoku (2x2 boxes, digits 1-4): generator, d1 CSV loader, infilling layout, verifier.

Spec section 1: the accuracy drop under parallel decoding shows where a prompt has several valid
completions, so the generator's default (10-12 blanks, ``unique=False``) keeps puzzles with
several solutions, and ``solved`` accepts any valid completion that keeps the givens. Spec
section 6: the d1 protocol scores Sudoku as cell accuracy over the blanks (``cell_accuracy``).
Spec section 7: the tiny models see the grid in place (givens as digits, blanks masked).

Grids are 16-character strings read row by row; ``'0'`` marks a blank in a puzzle.
"""

from __future__ import annotations

import csv
import random
from functools import lru_cache
from pathlib import Path

from mro.errors import MroError
from mro.tasks.example import generation_bar
from mro.tasks.base import Example, Task, TinyInput, heldout_bucket, last_answer_block, register_task

SIZE = 4
CELLS = SIZE * SIZE
DIGITS = "1234"
#: consecutive rejected draws after which ``generate`` gives up (options leave too few puzzles).
_MAX_FAILED_DRAWS = 100_000


def _units() -> list[tuple[int, ...]]:
    rows = [tuple(r * SIZE + c for c in range(SIZE)) for r in range(SIZE)]
    cols = [tuple(r * SIZE + c for r in range(SIZE)) for c in range(SIZE)]
    boxes = [
        tuple((br + r) * SIZE + bc + c for r in range(2) for c in range(2))
        for br in (0, 2)
        for bc in (0, 2)
    ]
    return rows + cols + boxes


_UNITS = _units()
_PEERS = [frozenset(j for unit in _UNITS if i in unit for j in unit if j != i) for i in range(CELLS)]


@lru_cache(maxsize=1)
def all_grids() -> tuple[str, ...]:
    """Every valid complete 4x4 grid (there are 288), enumerated once by backtracking."""
    grids: list[str] = []
    cells = [""] * CELLS

    def fill(i: int) -> None:
        if i == CELLS:
            grids.append("".join(cells))
            return
        for d in DIGITS:
            if all(cells[j] != d for j in _PEERS[i]):
                cells[i] = d
                fill(i + 1)
        cells[i] = ""

    fill(0)
    return tuple(grids)


@lru_cache(maxsize=1)
def _grid_masks() -> tuple[frozenset[str], list[dict[str, int]]]:
    """The set of grids, and per cell and digit a bitmask of the grids holding that digit there."""
    grids = all_grids()
    masks = [{d: 0 for d in DIGITS} for _ in range(CELLS)]
    for k, grid in enumerate(grids):
        for i, d in enumerate(grid):
            masks[i][d] |= 1 << k
    return frozenset(grids), masks


def is_valid_grid(s: str) -> bool:
    """True when ``s`` is a complete valid grid (16 digits 1-4, rows, columns and boxes distinct)."""
    return s in _grid_masks()[0]


def count_solutions(puzzle: str, limit: int = 2) -> int:
    """Number of valid completions of ``puzzle`` (16 digits, 0 = blank), capped at ``limit``.

    Intersects, over the givens, the precomputed sets of grids holding each given: exact and fast.
    """
    masks = _grid_masks()[1]
    candidates = (1 << len(all_grids())) - 1
    for i, d in enumerate(puzzle):
        if d != "0":
            candidates &= masks[i].get(d, 0)
    return min(candidates.bit_count(), limit)


def keeps_givens(puzzle: str, grid: str) -> bool:
    """True when ``grid`` holds every given digit of ``puzzle`` in its cell."""
    return len(grid) == CELLS and all(p in ("0", g) for p, g in zip(puzzle, grid))


def format_grid(puzzle: str) -> str:
    """The puzzle as four lines of four digits (0 = blank)."""
    return "\n".join(puzzle[r * SIZE:(r + 1) * SIZE] for r in range(SIZE))


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise MroError(f"split must be 'train' or 'test', got {split!r}")


def _check_blanks(min_blanks: int, max_blanks: int) -> None:
    if not (0 <= min_blanks <= max_blanks <= CELLS):
        raise MroError(
            f"sudoku blanks need 0 <= min_blanks <= max_blanks <= {CELLS}, "
            f"got min_blanks={min_blanks}, max_blanks={max_blanks}"
        )


def _draw_puzzle(rng: random.Random, min_blanks: int, max_blanks: int) -> tuple[str, str]:
    """A random (puzzle, solution) pair with a random number of blanks at random cells."""
    solution = rng.choice(all_grids())
    blanks = set(rng.sample(range(CELLS), rng.randint(min_blanks, max_blanks)))
    puzzle = "".join("0" if i in blanks else d for i, d in enumerate(solution))
    return puzzle, solution


def _example(example_id: str, puzzle: str, solution: str) -> Example:
    return Example(
        id=example_id,
        question=format_grid(puzzle),
        answer=solution,
        data={"puzzle": puzzle, "solution": solution},
    )


#: the data file shapes :meth:`SudokuTask.load` reads (named in the error for any other shape)
SHAPES = ("d1's CSV with header Puzzle,Solution (16-digit strings, 0 = blank)",
          'Dream\'s JSONL {"input": "0200\\n4302\\n...", "output": "1243\\n..."} (the grid in 4 lines)',
          'JSONL {"puzzle": "0200...", "solution": "1243..."}')


def _csv_columns(header: list[str], path: str) -> tuple[int, int]:
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("puzzle", "solution") if c not in names]
    if missing:
        raise MroError(f"{path}:1: missing column(s) {', '.join(missing)} (header must be Puzzle,Solution); "
                       f"sudoku data files are one of: {'; '.join(SHAPES)}")
    return names.index("puzzle"), names.index("solution")


def _grid_text(value, key: str) -> str:
    """A grid from a JSON value: digits, possibly over several lines (Dream's 4 rows of 4)."""
    if not isinstance(value, str):
        raise MroError(f"{key!r} must be a string of digits, got {value!r}")
    return "".join(value.split())


def _json_rows(path: str, text: str) -> list[tuple[int, str, str]]:
    """``(line, puzzle, solution)`` of a JSONL file in Dream's or the puzzle/solution shape."""
    import json

    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise MroError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
        if isinstance(record, dict) and "input" in record and "output" in record:
            keys = ("input", "output")
        elif isinstance(record, dict) and "puzzle" in record and "solution" in record:
            keys = ("puzzle", "solution")
        else:
            found = sorted(map(str, record)) if isinstance(record, dict) else type(record).__name__
            raise MroError(f"{path}:{line_no}: unknown sudoku record shape ({found}); "
                           f"sudoku data files are one of: {'; '.join(SHAPES)}")
        try:
            rows.append((line_no, _grid_text(record[keys[0]], keys[0]), _grid_text(record[keys[1]], keys[1])))
        except MroError as e:
            raise MroError(f"{path}:{line_no}: {e}") from None
    return rows


def _parse_row(puzzle: str, solution: str) -> tuple[str, str]:
    """Validate one CSV row; returns the normalised pair or raises ``MroError`` (no location)."""
    puzzle, solution = puzzle.strip(), solution.strip()
    if not puzzle.isascii() or not puzzle.isdigit() or len(puzzle) > CELLS:
        raise MroError(f"puzzle {puzzle!r} is not at most {CELLS} digits")
    puzzle = puzzle.zfill(CELLS)  # ints that lost leading zeros (blanks) in a spreadsheet
    if any(d not in "0" + DIGITS for d in puzzle):
        raise MroError(f"puzzle {puzzle!r} has digits outside 0-4")
    if not is_valid_grid(solution):
        raise MroError(f"solution {solution!r} is not a valid complete 4x4 sudoku grid")
    if not keeps_givens(puzzle, solution):
        raise MroError(f"solution {solution!r} does not keep the givens of puzzle {puzzle!r}")
    return puzzle, solution


@register_task
class SudokuTask(Task):
    """4x4 Sudoku; the reference answer is the 16-digit solution string."""

    name = "sudoku"
    metrics = ("solved", "cell_accuracy")
    tiny_gen_length = CELLS
    default_options = "min_blanks=10,max_blanks=12"

    def generate(
        self,
        n: int,
        seed: int,
        split: str = "test",
        min_blanks: int = 10,
        max_blanks: int = 12,
        unique: bool = False,
    ) -> list[Example]:
        """``n`` distinct puzzles of one split; ``unique=True`` keeps single-solution puzzles only."""
        _check_split(split)
        _check_blanks(min_blanks, max_blanks)
        rng = random.Random(seed)
        seen: set[str] = set()
        examples: list[Example] = []
        failed = 0
        bar = generation_bar(n, self.name)
        while len(examples) < n:
            puzzle, solution = _draw_puzzle(rng, min_blanks, max_blanks)
            if (
                puzzle in seen
                or heldout_bucket(puzzle) != (split == "test")
                or (unique and count_solutions(puzzle) != 1)
            ):
                failed += 1
                if failed > _MAX_FAILED_DRAWS:
                    raise MroError(
                        f"could not generate {n} distinct sudoku puzzles for split {split!r} "
                        f"with {min_blanks}-{max_blanks} blanks (unique={unique}); ask for fewer"
                    )
                continue
            failed = 0
            seen.add(puzzle)
            examples.append(_example(f"sudoku-{seed}-{len(examples)}", puzzle, solution))
            bar.update(1)
        bar.close()
        return examples

    def load(self, path: str) -> list[Example]:
        """A data file in any of :data:`SHAPES`, told apart by its content: d1's CSV (header
        ``Puzzle,Solution``, 16-digit strings, 0 = blank), Dream's JSONL (``input``/``output``,
        the grid in 4 lines of 4 digits) or JSONL with ``puzzle``/``solution``."""
        from mro.io import read_text

        file = Path(path)
        if not file.is_file():
            raise MroError(f"sudoku data file {path} does not exist")
        text = read_text(file, "sudoku data file").lstrip("\ufeff")
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if first.startswith("{"):
            examples = []
            for line, puzzle, solution in _json_rows(path, text):
                try:
                    puzzle, solution = _parse_row(puzzle, solution)
                except MroError as e:
                    raise MroError(f"{path}:{line}: {e}") from None
                examples.append(_example(f"{file.stem}-{len(examples)}", puzzle, solution))
            return examples
        with file.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise MroError(f"{path}:1: empty file; sudoku data files are one of: {'; '.join(SHAPES)}")
            p_col, s_col = _csv_columns(header, path)
            examples = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                line = reader.line_num
                if len(row) <= max(p_col, s_col):
                    raise MroError(f"{path}:{line}: expected Puzzle and Solution, got {len(row)} field(s)")
                try:
                    puzzle, solution = _parse_row(row[p_col], row[s_col])
                except MroError as e:
                    raise MroError(f"{path}:{line}: {e}") from None
                examples.append(_example(f"{file.stem}-{len(examples)}", puzzle, solution))
        return examples

    def tiny_input(self, example: Example, tokenizer) -> TinyInput:
        """The grid in place: givens as digit tokens, blanks as masks (infilling)."""
        puzzle = example.data["puzzle"]
        response = [
            tokenizer.mask_token_id if d == "0" else token
            for d, token in zip(puzzle, tokenizer.encode(puzzle))
        ]
        return TinyInput(prompt_ids=[tokenizer.bos_token_id], response_ids=response)

    def tiny_target(self, example: Example, tokenizer) -> TinyInput:
        """The grid with the reference solution filled in."""
        return TinyInput(
            prompt_ids=[tokenizer.bos_token_id],
            response_ids=tokenizer.encode(example.data["solution"]),
        )

    def extract(self, response: str) -> str | None:
        """The last 16 digits of the (last ``<answer>`` block of the) response, or ``None``."""
        digits = "".join(c for c in last_answer_block(response) if c in "0123456789")
        return digits[-CELLS:] if len(digits) >= CELLS else None

    def format_score(self, response: str) -> float:
        """1.0 when the (last ``<answer>`` block of the) response holds exactly 16 digits, all 1-4."""
        digits = [c for c in last_answer_block(response) if c in "0123456789"]
        return float(len(digits) == CELLS and all(c in DIGITS for c in digits))

    #: how a still-masked cell is written in a state's text (the puzzle format's blank)
    hole = "0"

    def potential(self, example: Example, state: str) -> float:
        """1.0 while the state (blanks as ``0``) keeps the givens and can still be completed to a
        valid grid, else 0.0; on a finished grid this is ``solved`` (docs/method.md section 4)."""
        grid = self.extract(state)
        if grid is None or not keeps_givens(example.data["puzzle"], grid):
            return 0.0
        return float(count_solutions(grid, limit=1) > 0)

    def score(self, example: Example, response: str) -> dict[str, float]:
        """``solved``: any valid completion keeping the givens; ``cell_accuracy``: over the blanks.

        A puzzle without blanks has ``cell_accuracy`` 1 exactly when the grid equals the solution.
        """
        grid = self.extract(response)
        if grid is None:
            return {"solved": 0.0, "cell_accuracy": 0.0}
        puzzle, solution = example.data["puzzle"], example.data["solution"]
        solved = is_valid_grid(grid) and keeps_givens(puzzle, grid)
        blanks = [i for i, d in enumerate(puzzle) if d == "0"]
        if blanks:
            accuracy = sum(grid[i] == solution[i] for i in blanks) / len(blanks)
        else:
            accuracy = float(grid == solution)
        return {"solved": float(solved), "cell_accuracy": accuracy}
