"""4x4 Sudoku task: grids, generator, CSV loader, infilling layout, extraction and scoring."""

import json

import pytest

from mro.errors import MroError
from mro.models.tokenizer import CharTokenizer
from mro.tasks import get_task
from mro.tasks.base import Example, heldout_bucket
from mro.tasks.sudoku import SudokuTask, all_grids, count_solutions, is_valid_grid

GRID = "1234341221434321"


@pytest.fixture(scope="module")
def task():
    return get_task("sudoku")


def _solutions(puzzle):
    return [g for g in all_grids() if all(p in ("0", d) for p, d in zip(puzzle, g))]


def _multi_solution_example(task):
    ex = next(e for e in task.generate(50, 3) if count_solutions(e.data["puzzle"]) > 1)
    other = next(s for s in _solutions(ex.data["puzzle"]) if s != ex.data["solution"])
    return ex, other


def test_registry(task):
    assert isinstance(task, SudokuTask)
    assert task.metrics == ("solved", "cell_accuracy")
    assert task.tiny_gen_length == 16
    with pytest.raises(MroError, match="unknown task 'nope'"):
        get_task("nope")


def test_all_grids_are_the_288_valid_grids():
    grids = all_grids()
    assert len(grids) == 288 == len(set(grids))
    assert all(is_valid_grid(g) for g in grids)
    assert GRID in grids


@pytest.mark.parametrize("bad", ["1234341221434312", "123434122143432", "1234341221434321 ", "0234341221434321", ""])
def test_is_valid_grid_rejects(bad):
    assert not is_valid_grid(bad)


def test_count_solutions():
    assert count_solutions(GRID) == 1
    assert count_solutions("0" * 16) == 2
    assert count_solutions("0" * 16, limit=1000) == 288
    assert count_solutions("11" + "0" * 14) == 0  # conflicting givens
    puzzle = "0" * 4 + GRID[4:]
    assert count_solutions(puzzle) == 1


def test_generate_blanks_determinism_and_validity(task):
    examples = task.generate(100, seed=7, min_blanks=10, max_blanks=12)
    assert [e.id for e in examples[:2]] == ["sudoku-7-0", "sudoku-7-1"]
    puzzles = [e.data["puzzle"] for e in examples]
    assert len(set(puzzles)) == 100
    for e in examples:
        puzzle, solution = e.data["puzzle"], e.data["solution"]
        assert 10 <= puzzle.count("0") <= 12
        assert is_valid_grid(solution) and e.answer == solution
        assert all(p in ("0", s) for p, s in zip(puzzle, solution))
        assert e.question.replace("\n", "") == puzzle
        assert heldout_bucket(puzzle)
    assert task.generate(100, seed=7) == examples
    assert task.generate(100, seed=8) != examples
    assert any(count_solutions(p) > 1 for p in puzzles)  # docs/method.md section 1: several completions


def test_train_and_test_splits_are_disjoint(task):
    train = {e.data["puzzle"] for e in task.generate(500, seed=1, split="train")}
    test = {e.data["puzzle"] for e in task.generate(100, seed=1, split="test")}
    assert not train & test
    assert not any(heldout_bucket(p) for p in train)


def test_unique_puzzles_have_one_solution(task):
    for e in task.generate(50, seed=2, unique=True):
        assert count_solutions(e.data["puzzle"]) == 1


@pytest.mark.parametrize(
    "options", [dict(min_blanks=12, max_blanks=10), dict(max_blanks=17), dict(min_blanks=-1), dict(split="dev")]
)
def test_generate_rejects_bad_options(task, options):
    with pytest.raises(MroError):
        task.generate(3, seed=0, **options)


def test_generate_gives_up_when_too_few_puzzles_exist(task):
    with pytest.raises(MroError, match="could not generate"):
        task.generate(300, seed=0, min_blanks=0, max_blanks=0)


def test_tiny_layout_is_in_place(task):
    tok = CharTokenizer()
    ex = task.generate(1, seed=4)[0]
    inp, tgt = task.tiny_input(ex, tok), task.tiny_target(ex, tok)
    assert inp.prompt_ids == tgt.prompt_ids == [tok.bos_token_id]
    assert len(inp.response_ids) == len(tgt.response_ids) == 16
    for d, i, t in zip(ex.data["puzzle"], inp.response_ids, tgt.response_ids):
        assert i == (tok.mask_token_id if d == "0" else t)
    assert tok.decode(tgt.response_ids) == ex.data["solution"]


def test_extract(task):
    assert task.extract(GRID) == GRID
    assert task.extract("1234\n3412\n2143\n4321") == GRID
    assert task.extract(f"<answer>{'1' * 16}</answer> then <answer>{GRID}</answer>") == GRID
    assert task.extract(f"<answer>1234</answer> {GRID}") is None
    assert task.extract("99" + GRID) == GRID
    assert task.extract("123") is None


def test_score_reference_and_other_valid_completion(task):
    ex, other = _multi_solution_example(task)
    assert task.score(ex, ex.data["solution"]) == {"solved": 1.0, "cell_accuracy": 1.0}
    score = task.score(ex, f"<answer>{other}</answer>")
    assert score["solved"] == 1.0 and score["cell_accuracy"] < 1.0


def test_score_broken_givens_and_garbage(task):
    ex = Example("x", "", GRID, {"puzzle": "1" + "0" * 15, "solution": GRID})
    other = next(g for g in all_grids() if g[0] != "1")
    assert task.score(ex, other)["solved"] == 0.0
    assert task.score(ex, "no grid here") == {"solved": 0.0, "cell_accuracy": 0.0}
    invalid = "1" * 16
    assert task.score(ex, invalid) == {"solved": 0.0, "cell_accuracy": 3 / 15}


def test_load_csv(task, tmp_path):
    path = tmp_path / "d1_sudoku.csv"
    path.write_text(f" puzzle , SOLUTION \n{'0' * 12}4321,{GRID}\n\n 1034341221434321 , {GRID} \n")
    examples = task.load(str(path))
    assert [e.id for e in examples] == ["d1_sudoku-0", "d1_sudoku-1"]
    assert examples[0].data == {"puzzle": "0" * 12 + "4321", "solution": GRID}
    assert examples[1].data["puzzle"] == "1034341221434321"


def test_load_csv_pads_puzzles_that_lost_leading_zeros(task, tmp_path):
    path = tmp_path / "ints.csv"
    path.write_text(f"Puzzle,Solution\n4321,{GRID}\n")
    assert task.load(str(path))[0].data["puzzle"] == "0" * 12 + "4321"


@pytest.mark.parametrize(
    "row, reason",
    [
        (f"12343412214343210,{GRID}", "not at most 16 digits"),
        (f"12a4341221434321,{GRID}", "not at most 16 digits"),
        (f"1234341221434329,{GRID}", "outside 0-4"),
        ("0000000000000000,1234341221434312", "not a valid"),
        (f"2000000000000000,{GRID}", "does not keep the givens"),
        ("0000000000000000", "expected Puzzle and Solution"),
    ],
)
def test_load_csv_malformed_row_names_file_and_line(task, tmp_path, row, reason):
    path = tmp_path / "bad.csv"
    path.write_text(f"Puzzle,Solution\n{'0' * 16},{GRID}\n{row}\n")
    with pytest.raises(MroError, match=reason) as err:
        task.load(str(path))
    assert str(err.value).startswith(f"{path}:3: ")
    assert "\n" not in str(err.value)


def test_load_csv_missing_file_or_columns(task, tmp_path):
    with pytest.raises(MroError, match="does not exist"):
        task.load(str(tmp_path / "missing.csv"))
    path = tmp_path / "cols.csv"
    path.write_text(f"quizzes,solutions\n{'0' * 16},{GRID}\n")
    with pytest.raises(MroError, match=f"{path}:1: missing column"):
        task.load(str(path))


def test_load_dream_jsonl(task, tmp_path):
    """Dream's Sudoku files: the 4x4 grid in 4 lines, as 'input' (0 = blank) and 'output'."""
    path = tmp_path / "sudoku_dream.jsonl"
    puzzle = "0" * 12 + "4321"
    rows = [{"input": "\n".join(puzzle[i:i + 4] for i in range(0, 16, 4)),
             "output": "\n".join(GRID[i:i + 4] for i in range(0, 16, 4))},
            {"puzzle": puzzle, "solution": GRID}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = task.load(str(path))
    assert [e.data for e in examples] == [{"puzzle": puzzle, "solution": GRID}] * 2
    assert examples[0].id == "sudoku_dream-0"


@pytest.mark.parametrize("content, where", [
    ('{"quizzes": "0000", "solutions": "1234"}\n', ":1: unknown sudoku record shape"),
    ("a,b\n1,2\n", ":1: missing column"),
])
def test_load_unknown_shape_names_the_shapes(task, tmp_path, content, where):
    path = tmp_path / "data.txt"
    path.write_text(content)
    with pytest.raises(MroError, match=where) as err:
        task.load(str(path))
    message = str(err.value)
    assert "\n" not in message and "d1's CSV" in message and "Dream's JSONL" in message


def test_load_dream_jsonl_bad_grid_names_the_line(task, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"input": "0" * 16, "output": GRID}) + "\n"
                    + json.dumps({"input": "0" * 16, "output": "1234\n1234\n1234\n1234"}) + "\n")
    with pytest.raises(MroError, match=f"{path}:2: solution .* is not a valid"):
        task.load(str(path))


def test_generating_many_puzzles_shows_progress(capsys):
    from mro.tasks import get_task

    get_task("sudoku").generate(10_000, seed=3)
    assert "generating sudoku problems" in capsys.readouterr().err
    get_task("sudoku").generate(50, seed=3)
    assert "generating" not in capsys.readouterr().err  # small sets stay quiet
