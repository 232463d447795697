"""Countdown task: solvable generator, safe verifier, JSONL loader and tiny layout."""

import json
from fractions import Fraction

import pytest

from mro.errors import MroError
from mro.models.tokenizer import CharTokenizer
from mro.tasks import get_task
from mro.tasks.base import Example, heldout_bucket
from mro.tasks.countdown import CountdownTask, parse_expression, render


@pytest.fixture(scope="module")
def task():
    return get_task("countdown")


def _example(nums, target):
    return Example("x", "", target, {"nums": nums, "target": target})


def test_registry(task):
    assert isinstance(task, CountdownTask)
    assert task.metrics == ("correct",)
    assert task.tiny_gen_length == 20
    with pytest.raises(MroError, match="unknown task"):
        get_task("count-down")


def test_generator_emits_only_solvable_problems(task):
    examples = task.generate(300, seed=5)
    assert len({(tuple(sorted(e.data["nums"])), e.answer) for e in examples}) == 300
    for e in examples:
        nums, target, solution = e.data["nums"], e.data["target"], e.data["solution"]
        assert len(nums) == 3 and all(1 <= v <= 100 for v in nums)  # d1's cd3 shape
        assert 1 <= target <= 100 and e.answer == target
        assert len(solution) <= 20 and " " not in solution
        assert str(nums) in e.question and str(target) in e.question
        assert task.score(e, f"<answer>{solution}</answer>") == {"correct": 1.0}
    assert task.generate(300, seed=5) == examples


def test_generator_options_and_splits(task):
    threes = task.generate(50, seed=1, split="train", n_numbers=3, max_number=9, max_target=50)
    assert all(len(e.data["nums"]) == 3 and max(e.data["nums"]) <= 9 for e in threes)

    def keys(split):
        return {
            ",".join(map(str, sorted(e.data["nums"]))) + f">{e.answer}"
            for e in task.generate(300, seed=1, split=split)
        }

    train, test = keys("train"), keys("test")
    assert not train & test
    assert all(heldout_bucket(k) for k in test) and not any(heldout_bucket(k) for k in train)


@pytest.mark.parametrize(
    "options", [dict(n_numbers=1), dict(n_numbers=()), dict(min_number=0), dict(max_target=0), dict(split="all")]
)
def test_generator_rejects_bad_options(task, options):
    with pytest.raises(MroError):
        task.generate(2, seed=0, **options)


@pytest.mark.parametrize(
    "tree, text",
    [
        (("-", ("*", ("+", 12, 3), 4), 7), "(12+3)*4-7"),
        (("-", 10, ("-", 5, 2)), "10-(5-2)"),
        (("+", 1, ("-", 5, 2)), "1+5-2"),
        (("/", 8, ("*", 2, 2)), "8/(2*2)"),
        (("*", ("/", 8, 2), 3), "8/2*3"),
    ],
)
def test_render_uses_minimal_parentheses(tree, text):
    assert render(tree) == text


def test_parse_expression_is_exact():
    assert parse_expression("6/(2/3)") == (Fraction(9), [6, 2, 3])
    assert parse_expression(" (12 + 3) * 4 - 7 ") == (Fraction(53), [12, 3, 4, 7])


@pytest.mark.parametrize(
    "response, correct",
    [
        ("<answer>(12+3)*4-7</answer>", 1.0),
        ("<answer>4*(3+12)-7 = 53</answer>", 1.0),
        ("<answer>1</answer> <answer>12*4+3-7</answer>", 0.0),  # wrong value, last block counts
        ("(12+3)*4-8", 0.0),  # wrong number
        ("(12+3)*4-7+0", 0.0),  # extra number
        ("(12+12)*4-7", 0.0),  # reused number instead of 3
        ("(12+3)*4", 0.0),  # missing number
        ("", 0.0),
    ],
)
def test_score(task, response, correct):
    assert task.score(_example([12, 3, 4, 7], 53), response) == {"correct": correct}


def test_score_division_uses_exact_fractions(task):
    assert task.score(_example([2, 3, 6], 9), "6/(2/3)") == {"correct": 1.0}
    assert task.score(_example([2, 3, 6], 9), "6/(3-3)") == {"correct": 0.0}


@pytest.mark.parametrize(
    "text, reason",
    [
        ("3×4", "not allowed"),
        ("３+4", "not allowed"),
        ("1.5*2", "not allowed"),
        ("2**3", "Pow"),
        ("7//2", "FloorDiv"),
        ("-3+5", "UnaryOp"),
        ("(1)(2)", "Call"),
        ("()", "Tuple"),
        ("(1, 2)", "not allowed"),
        ("1 2", "syntax error"),
        ("4/(2-2)", "division by zero"),
        ("1+" * 101 + "1", "longer than 200"),
    ],
)
def test_parse_expression_rejects(text, reason):
    with pytest.raises(MroError, match=reason) as err:
        parse_expression(text)
    assert str(err.value).startswith("countdown answer is not an arithmetic expression: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "code",
    [
        "__import__('os').system('touch X')",
        "(lambda: 1)()",
        "open('X', 'w').write('1')",
        "[c for c in ().__class__.__base__.__subclasses__()]",
    ],
)
def test_code_is_never_run(task, tmp_path, monkeypatch, code):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MroError) as err:
        parse_expression(code)
    assert "\n" not in str(err.value)
    assert task.score(_example([1], 1), f"<answer>{code}</answer>") == {"correct": 0.0}
    assert list(tmp_path.iterdir()) == []


def test_extract(task):
    assert task.extract("think <answer> 3+4 = 7 </answer>") == "3+4"
    assert task.extract("3*4") == "3*4"
    assert task.extract("<answer> </answer>") is None
    assert task.extract("= 7") is None


def test_tiny_layout(task):
    tok = CharTokenizer()
    ex = task.generate(1, seed=3)[0]
    inp, tgt = task.tiny_input(ex, tok), task.tiny_target(ex, tok)
    prompt = ",".join(map(str, ex.data["nums"])) + f">{ex.data['target']}:"
    assert inp.prompt_ids == tgt.prompt_ids == [tok.bos_token_id] + tok.encode(prompt)
    assert inp.response_ids == [tok.mask_token_id] * 20
    assert len(tgt.response_ids) == 20
    assert tok.decode(tgt.response_ids) == ex.data["solution"]
    assert tgt.response_ids[len(ex.data["solution"]):] == [tok.eos_token_id] * (20 - len(ex.data["solution"]))
    with pytest.raises(MroError, match="no reference solution"):
        task.tiny_target(_example([1, 2], 3), tok)


def test_load_jsonl_and_json(task, tmp_path):
    rows = [{"nums": [44, 19, 35], "target": 98}, {"target": 3, "nums": [1, 2], "extra": "ok"}]
    jsonl = tmp_path / "countdown.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    examples = task.load(str(jsonl))
    assert [e.id for e in examples] == ["countdown-0", "countdown-1"]
    assert examples[0].data == {"nums": [44, 19, 35], "target": 98} and examples[0].answer == 98
    as_list = tmp_path / "countdown.json"
    as_list.write_text(json.dumps(rows))
    assert [e.data for e in task.load(str(as_list))] == [e.data for e in examples]


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"nums": [1, 2], "target": 3', "invalid JSON"),
        ('{"nums": [1, 2]}', "missing key 'target'"),
        ('{"nums": [1, "2"], "target": 3}', "'nums' must be"),
        ('{"nums": 12, "target": 3}', "'nums' must be"),
        ('{"nums": [1, 2], "target": 3.0}', "'target' must be"),
        ('{"nums": [1, 2], "target": true}', "'target' must be"),
        ("[1, 2, 3]", "expected an object"),
    ],
)
def test_load_malformed_line_names_file_and_line(task, tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"nums": [1, 2], "target": 3}\n' + line + "\n")
    with pytest.raises(MroError, match=reason) as err:
        task.load(str(path))
    assert str(err.value).startswith(f"{path}:2: ")
    assert "\n" not in str(err.value)


def test_load_missing_file(task, tmp_path):
    with pytest.raises(MroError, match="does not exist"):
        task.load(str(tmp_path / "none.jsonl"))


@pytest.mark.parametrize(
    "response, expression",
    [
        ("<reasoning>44+19=63</reasoning>\n<answer>\n\\boxed{44 + 19 + 35}\n</answer>", "44 + 19 + 35"),
        ("<answer>\\boxed{(44+19)+35 = 98}</answer>", "(44+19)+35"),
        ("<answer>\\boxed{44 \\times 2 \\div 4 - 35 \\cdot 1}</answer>", "44 * 2 / 4 - 35 * 1"),
        ("no tags, but \\boxed{3*4}", "3*4"),
        ("<answer>\\boxed{}</answer>", None),
    ],
)
def test_extract_unwraps_boxed(task, response, expression):
    assert task.extract(response) == expression


def test_score_d1_boxed_answer(task):
    ex = _example([44, 19, 35], 98)
    assert task.score(ex, "<reasoning>...</reasoning>\n<answer>\n\\boxed{44 + 19 + 35}\n</answer>") == {"correct": 1.0}
    assert task.score(ex, "<answer>\\boxed{44 \\times 19 + 35}</answer>") == {"correct": 0.0}


def test_load_d1_input_output_shape(task, tmp_path):
    path = tmp_path / "countdown_cd3_test.jsonl"
    rows = [{"input": "44,19,35", "output": "98"}, {"input": " 1, 2", "output": 3}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = task.load(str(path))
    assert [e.data for e in examples] == [{"nums": [44, 19, 35], "target": 98}, {"nums": [1, 2], "target": 3}]
    assert examples[0].answer == 98 and examples[0].id == "countdown_cd3_test-0"
    assert "[44, 19, 35]" in examples[0].question and "98" in examples[0].question
    assert task.score(examples[0], "<answer>\\boxed{44+19+35}</answer>") == {"correct": 1.0}


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"input": "44,19,35"}', "missing key 'output'"),
        ('{"output": "98"}', "missing key 'input'"),
        ('{"input": "44,x,35", "output": "98"}', "'input' must be comma-separated integers"),
        ('{"input": [44, 19], "output": "63"}', "'input' must be comma-separated integers"),
        ('{"input": "44,19", "output": "6.3"}', "'output' must be an integer"),
        ('{"input": "44,19", "output": true}', "'output' must be an integer"),
        ('{"question": "?"}', "unknown countdown record shape .*expected one of: .*nums.*d1's.*Dream's"),
    ],
)
def test_load_d1_malformed_line(task, tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "1,2", "output": "3"}\n' + line + "\n")
    with pytest.raises(MroError, match=reason) as err:
        task.load(str(path))
    assert str(err.value).startswith(f"{path}:2: ")
    assert "\n" not in str(err.value)


def test_load_dream_shape(task, tmp_path):
    """Dream's Countdown files: the numbers then the target in 'input', a worked solution in 'output'."""
    path = tmp_path / "countdown_dream.jsonl"
    rows = [{"input": "15,44,79,50", "output": "44-15=29,79-29=50"}, {"input": "44,19,35", "output": "98"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = task.load(str(path))
    assert [e.data for e in examples] == [{"nums": [15, 44, 79], "target": 50}, {"nums": [44, 19, 35], "target": 98}]
    assert task.score(examples[0], "<answer>79-(44-15)</answer>") == {"correct": 1.0}


@pytest.mark.parametrize("a, b, same", [
    ("3+4", "4+3", True),
    ("(3)+4", "4 + 3", True),
    ("2*3+1", "1+3*2", True),
    ("3+4", "5+2", False),       # same value, other numbers
    ("3+4", "3*4", False),       # same numbers, other value
    ("3+4", "3+4+0", False),
    ("abc", " a b c", True),     # text that does not parse compares by its characters
    ("3+4", "abc", False),
])
def test_same_answer_compares_meaning(task, a, b, same):
    assert task.same_answer(a, b) is same


def test_majority_vote_counts_reorderings_as_one_answer(task):
    from mro.rewards.quality import majority_vote

    assert majority_vote(["5+2", "3+4", "4+3"], task.same_answer) == "3+4"


def test_chain_layout_renders_and_scores_as_its_expression(task):
    from mro.tasks.countdown import chain_expression, render_chain

    tree = ("-", 79, ("-", 44, 15))
    assert render_chain(tree) == "44-15=29,79-29=50"
    assert chain_expression("44-15=29,79-29=50") == "79-(44-15)"
    assert render_chain(("*", ("+", 3, 5), ("-", 9, 2))) == "3+5=8,9-2=7,8*7=56"
    assert chain_expression("3+5=8,9-2=7,8*7=56") == "(3+5)*(9-2)"
    # a given number equal to an intermediate: the intermediate is used once, the given once
    assert chain_expression("3+5=8,8*8=64") == "(3+5)*8"
    assert chain_expression("3*4") is None and chain_expression("3*4=12") is None
    ex = _example([15, 44, 79], 50)
    assert task.score(ex, "44-15=29,79-29=50") == {"correct": 1.0}
    assert task.score(ex, "<answer>44-15=29, 79-29=50</answer>") == {"correct": 1.0}
    assert task.score(ex, "44-15=28,79-28=51") == {"correct": 0.0}  # a false step
    assert task.score(ex, "44-15=29,79-29=51") == {"correct": 0.0}
    assert task.score(ex, "44-15=29,79-15=64") == {"correct": 0.0}  # 29 never used, 15 twice
    assert task.same_answer(task.extract("44-15=29,79-29=50"), "79-(44-15)")
    # the padded layout: fixed-width numbers, the last step without its "=target"
    assert render_chain(tree, padded=True) == "044-015=029,079-029"
    assert chain_expression("044-015=029,079-029") == "79-(44-15)"
    assert task.score(ex, "044-015=029,079-029") == {"correct": 1.0}
    assert task.score(ex, "044-015=028,079-028") == {"correct": 0.0}


@pytest.mark.parametrize("layout, equals", [("chain", 2), ("chain-padded", 1)])
def test_generator_chain_layouts(task, layout, equals):
    examples = task.generate(200, seed=2, split="train", n_numbers=3, max_number=100, layout=layout)
    for e in examples:
        solution = e.data["solution"]
        assert solution.count("=") == equals and len(solution) <= 20
        assert task.score(e, solution) == {"correct": 1.0}
        if layout == "chain-padded":
            assert len(solution) == 19  # every number 3 digits: a fixed place for every character
    with pytest.raises(MroError, match="layout must be one of"):
        task.generate(2, seed=0, layout="tree")


def test_hole_is_a_tiny_character_outside_any_answer(task):
    from mro.models.tokenizer import DEFAULT_CHARS
    from mro.tasks.countdown import _ALLOWED_CHARS

    assert task.hole == "?" and task.hole in DEFAULT_CHARS and task.hole not in _ALLOWED_CHARS
    assert task.score(_example([15, 44, 79], 50), "44-15=29,79-29=5?") == {"correct": 0.0}


@pytest.mark.parametrize("state, phi", [
    ("44-15=29,79-29=50", 1.0),  # finished and correct
    ("44-15=29,79-29", 1.0),  # the last step's "=value" left out
    ("044-015=029,079-029", 1.0),  # the padded layout
    ("044-015=029,079-029   ", 1.0),  # trailing spaces
    ("44 - 15 = 29, 79 - 29 = 50", 1.0),
    ("79-(44-15)", 1.0),  # a plain expression: its correctness
    ("79-(44-16)", 0.0),
    ("44-15=29,?????????", 0.5),  # first step right, the second still masked
    ("44-15=29,79-2????", 0.5),
    ("044-015=029,0?????", 0.5),
    ("44-15=29????", 0.0),  # the first step is not finished until its comma
    ("44-15=2?,79-29=50", 0.0),
    ("44-15=28,79-28=51", 0.0),  # wrong arithmetic in the first step
    ("44-15=29,79-29=51", 0.5),  # wrong arithmetic in the second step
    ("44-16=28,79-28=51", 0.0),  # 16 is not a given number
    ("44-15=29,79-15=64", 0.5),  # 15 used twice (and 29 never): the second step does not count
    ("44-44=0,79-0=79", 0.0),  # 44 given once, used twice
    ("79-44=35,35+15=50", 1.0),  # another correct chain
    ("79-44=35,35-15=20", 0.5),  # right arithmetic, wrong target: no more than the first step
    ("79-44=35,35-15", 0.5),
    ("44-15=29", 0.5),  # stops one step short: the first step is finished and counts...
    ("44-15", 0.0),  # ...but "=value" may only be left out on the last step needed
    ("44/15=2,79-2=77", 0.0),  # division must be exact
    ("44-15=29,79-29=50,50+0=50", 0.5),  # finished chain, then more: not a correct answer
    ("", 0.0),
    ("?" * 20, 0.0),
])
def test_potential_counts_finished_correct_chain_steps(task, state, phi):
    ex = _example([15, 44, 79], 50)
    assert task.potential(ex, state) == phi


def test_potential_four_numbers_and_answer_blocks(task):
    ex = _example([3, 5, 9, 2], 56)
    assert task.potential(ex, "3+5=8,9-2=7,8*7=56") == 1.0
    assert task.potential(ex, "3+5=8,9-2=7,8*7=55") == pytest.approx(2 / 3)
    assert task.potential(ex, "3+5=8,9-2=7,?????") == pytest.approx(2 / 3)
    assert task.potential(ex, "3+5=8,??????????") == pytest.approx(1 / 3)
    assert task.potential(ex, "3+5=8,8*9=72,72-2=70") == pytest.approx(2 / 3)  # 8 is the step's value
    assert task.potential(ex, "<answer>3+5=8, 9-2=?</answer>") == pytest.approx(1 / 3)
    assert task.potential(_example([7], 7), "7") == 1.0 and task.potential(_example([7], 7), "6") == 0.0


def test_potential_of_tiny_states_with_masks_written_as_holes(task):
    """What ``MultiReward.potentials`` hands the task: the tiny layout's response, masked
    positions written as the hole, ``<eos>`` padding dropped by the decoder (so a hole in the
    padding still leaves the last step unfinished: it could become a digit)."""
    tok = CharTokenizer()
    (ex,) = task.generate(1, seed=3, split="train", n_numbers=3, layout="chain-padded")
    ids = task.tiny_target(ex, tok).response_ids
    (hole,) = tok.encode(task.hole)
    n = len(ex.data["solution"])
    phis = [task.potential(ex, tok.decode(ids[:k] + [hole] * (len(ids) - k))) for k in range(len(ids) + 1)]
    assert phis[0] == 0.0 and phis[-1] == 1.0
    assert phis[n] == phis[-2] == 0.5 and phis[n // 2] == 0.0  # first step finished at its comma
    assert phis == sorted(phis)  # left to right: never falls


@pytest.mark.parametrize("layout", ["chain", "chain-padded", "expression"])
def test_potential_is_one_exactly_when_correct(task, layout):
    import random

    examples = task.generate(200, seed=0, split="train", n_numbers=3, max_number=100, max_target=100,
                             layout=layout)
    rng = random.Random(0)
    for e in examples:
        solution = e.data["solution"]
        wrong = [solution + "1", solution[:-1] + task.hole,
                 solution.replace("+", "-", 1), solution[: len(solution) // 2],
                 "".join(rng.sample(solution, len(solution)))]
        for text in [solution, solution + "  "] + wrong:
            phi = task.potential(e, text)
            assert 0.0 <= phi <= 1.0
            assert (phi == 1.0) == (task.score(e, text)["correct"] == 1.0), (e.data, text, phi)
        assert task.potential(e, solution) == 1.0
        if layout != "expression":  # the first step of a correct chain counts
            first = solution.split(",")[0]
            assert task.potential(e, first + "," + task.hole * 8) == 0.5
