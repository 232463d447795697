"""Answer extraction and checking: GSM8K numbers, MATH via math-verify, GPQA letters."""

import time

import pytest

from mro.tasks.checkers import (
    TimeoutWorker,
    answer_block,
    boxed,
    format_ok,
    gsm8k_equal,
    gsm8k_extract,
    gsm8k_gold,
    letter_extract,
    math_equal,
)


def slow_verify(gold, span):
    """A math check that hangs (module level so the worker process can unpickle it)."""
    time.sleep(60)
    return True


def failing_verify(gold, span):
    raise ValueError("boom")


@pytest.mark.parametrize("response, gold", [
    ("#### 1,080", "1080"),                                        # thousands comma
    ("\\boxed{\\$1,080.00}", "1080"),                              # $, comma, trailing zeros
    ("She pays $18.50 per kg, so the answer is 18.5 dollars.", "18.5"),
    ("The total is 5 + 3 = 8 apples.", "8"),                       # several numbers: the last
    ("3 boxes of 12 is 36 pencils.\n#### 36\n\nQuestion: 7 cats", "36"),  # #### wins over later text
    ("First 2 and 3, then \\boxed{42} and 7 more.", "42"),         # first \boxed wins
    ("<reasoning>40 + 2 = 42</reasoning>\n<answer>\n\\boxed{42}\n</answer>", "42"),
    ("<answer>72 dollars</answer> Question: 5 dogs", "72"),         # answer block, units
    ("It costs 1{,}000 dollars.", "1000"),                          # LaTeX thousands
    ("The change in temperature is -3.", "-3"),
    ("That is 50% of them, i.e. 50%.", "50"),
])
def test_gsm8k_numeric_match(response, gold):
    assert gsm8k_equal(gold, response)


@pytest.mark.parametrize("response, gold", [
    ("#### 1,081", "1080"),
    ("The range is 10-15.", "-15"),          # a hyphen between numbers is not a minus sign
    ("no number here", "0"),
    ("<answer></answer> 5", "5"),            # an empty answer block is not rescued by later text
])
def test_gsm8k_mismatches(response, gold):
    assert not gsm8k_equal(gold, response)


def test_gsm8k_gold_and_extract():
    assert gsm8k_gold("Natalia sold 48 / 2 = 24 clips in May.\n#### 1,072") == "1072"
    assert gsm8k_gold(18) == "18"
    assert gsm8k_gold("no digits") is None
    assert gsm8k_extract("The answer is 3.50") == "3.5"
    assert gsm8k_extract("nothing") is None


def test_spans():
    assert boxed("so \\boxed{\\frac{1}{2}} and \\boxed{3}") == "\\frac{1}{2}"
    assert boxed("none") is None
    assert answer_block("<answer>1</answer> then <answer>2</answer>") == "2"
    assert answer_block("<answer>unclosed 7") == "unclosed 7"
    assert answer_block("no tags") is None


@pytest.mark.parametrize("gold, response, equal", [
    ("\\frac{1}{2}", "<answer>0.5</answer>", True),
    ("0.5", "Thus the answer is $\\boxed{\\dfrac{1}{2}}$.", True),
    ("2\\sqrt{2}", "<answer>\\sqrt{8}</answer>", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "<answer>$(3, \\pi/2)$</answer>", True),
    ("\\frac{1}{2}", "<answer>\\boxed{0.25}</answer>", False),
    ("7", "no answer at all", False),
])
def test_math_answers_equal_but_written_differently(gold, response, equal):
    assert math_equal(gold, response) is equal


def test_a_hanging_math_check_is_cut_off_and_the_worker_recovers():
    start = time.monotonic()
    assert math_equal("1", "<answer>1</answer>", timeout=1.0, fn=slow_verify) is False
    assert 1.0 <= time.monotonic() - start < 20  # it ran (and hung) until the timeout
    assert math_equal("1", "<answer>1</answer>") is True  # a fresh worker takes over
    assert math_equal("1", "<answer>1</answer>", fn=failing_verify) is False


def test_timeout_worker_reports_errors_and_timeouts():
    worker = TimeoutWorker()
    try:
        assert worker.run(max, 3, 7, timeout=30) == 7
        with pytest.raises(RuntimeError, match="ValueError: boom"):
            worker.run(failing_verify, "1", "1", timeout=30)
        assert worker.run(max, 1, 2, timeout=30) == 2  # same worker after an error
        with pytest.raises(TimeoutError):
            worker.run(time.sleep, 60, timeout=0.5)
        assert worker.run(min, 1, 2, timeout=30) == 1
    finally:
        worker.close()


@pytest.mark.parametrize("response, letter", [
    ("<answer>B</answer>", "B"),
    ("<answer>\n(C) 42 kJ\n</answer>", "C"),
    ("<answer>The answer is D</answer>", "D"),
    ("<answer>\\boxed{A}</answer>", "A"),
    ("A long derivation... so the answer is (B).", "B"),
    ("A cat sat. Nothing chosen.", None),
])
def test_gpqa_letter(response, letter):
    assert letter_extract(response) == letter


@pytest.mark.parametrize("response, ok", [
    ("<think>\n2+2\n</think>\n<answer>\n4\n</answer>", True),
    ("2+2 is 4\n</reasoning>\n<answer>\n4\n</answer>\n", True),   # d1 prefills <reasoning>
    ("<answer>4</answer>", False),                                 # no reasoning
    ("<think>x</think><answer>4</answer> and more", False),       # text after the answer
    ("<think>x</think><answer>4", False),                          # unclosed answer
])
def test_format(response, ok):
    assert format_ok(response) is ok
