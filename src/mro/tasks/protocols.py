"""The two evaluation protocols of this field (docs/method.md section 8).

Peers' numbers disagree by 5+ points because of the protocol, so every result records its name.

- ``d1`` (the d1 repository's eval): 0-shot; the task's "system prompt" asks for
  ``<reasoning>...</reasoning><answer>...</answer>`` and, as d1 does, sits at the top of the **user**
  turn (``system + "\\n\\n" + question``); the response is prefilled with ``<reasoning>``;
  block 32, steps = length / 2, temperature 0; Sudoku's primary metric is cell accuracy.
- ``mro`` (the paper): lm-evaluation-harness style few-shot (4-shot GSM8K / MATH500, 5-shot
  GPQA / Countdown / Sudoku) in the user turn (``Question: ...\\nAnswer: <think>...</think>
  <answer>...</answer>`` per shot, then ``Question: ...\\nAnswer:``), the format instruction as the
  system turn, block 8 for GSM8K and 64 otherwise, steps = length / 2, temperature 0.25.
  **[choice]** The paper does not print its prompts; the wording and the few-shot examples below
  are this project's (hand-written, checked by the tests), so that it works offline.

``build_prompt`` gives ``(system, user)``; ``response_prefix`` the text the response starts with;
``prompt_ids`` turns the three into a model's ids (``DiffusionLM.encode_prompt``);
``decode_settings`` the sampler's steps, block length and temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mro.errors import MroError
from mro.tasks.example import Example

#: the Countdown question (the task's own ``question`` text and the few-shot examples')
COUNTDOWN_QUESTION = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic "
    "arithmetic operations (+, -, *, /) and each number can only be used once."
)


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is prompted, decoded and scored.

    ``shots``, ``block_length`` and ``primary`` map task names to values; the key ``"*"`` is the
    default for tasks not named.
    """

    name: str
    shots: dict[str, int]
    block_length: dict[str, int]
    temperature: float
    primary: dict[str, str]
    reasoning_tag: str
    response_prefix: str = ""
    description: str = field(default="", compare=False)

    def shots_for(self, task_name: str) -> int:
        return self.shots.get(task_name, self.shots.get("*", 0))

    def block_for(self, task_name: str) -> int:
        return self.block_length.get(task_name, self.block_length["*"])

    def primary_metric(self, task_name: str) -> str:
        return self.primary.get(task_name, self.primary["*"])


PROTOCOLS = {
    "d1": Protocol(
        name="d1", shots={"*": 0}, block_length={"*": 32}, temperature=0.0,
        primary={"sudoku": "cell_accuracy", "countdown": "correct", "*": "accuracy"},
        reasoning_tag="reasoning", response_prefix="<reasoning>",
        description="d1: 0-shot, <reasoning>/<answer>, block 32, steps = length/2, temperature 0"),
    "mro": Protocol(
        name="mro", shots={"gsm8k": 4, "math500": 4, "*": 5},
        block_length={"gsm8k": 8, "*": 64}, temperature=0.25,
        primary={"sudoku": "solved", "countdown": "correct", "*": "accuracy"},
        reasoning_tag="think",
        description="MRO paper: 4/5-shot, <think>/<answer>, block 8 (GSM8K) or 64, steps = length/2, "
                    "temperature 0.25"),
}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The protocol called ``protocol`` (one-line error naming the known ones)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise MroError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def decode_settings(protocol: str | Protocol, task_name: str, gen_length: int) -> dict:
    """``{"steps", "block_length", "temperature"}`` for a response of ``gen_length`` tokens.

    steps = gen_length / 2; the block is the protocol's, capped at ``gen_length``.
    """
    p = get_protocol(protocol)
    block = min(p.block_for(task_name), gen_length)
    if gen_length < 2 or gen_length % block or gen_length % 2:
        raise MroError(f"protocol {p.name}: gen_length {gen_length} must be even and a multiple of "
                       f"the block length {block}")
    return {"steps": gen_length // 2, "block_length": block, "temperature": p.temperature}


# --- d1's prompts (verbatim from the d1 repository's eval scripts) ------------------------------

_D1_MATH = ("You are a math expert. You will be given a question to solve. Solve it step by step. "
            "Wrap the final answer in a \\boxed{}. \nRespond in the following format:\n<reasoning>\n"
            "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>")
_D1_COUNTDOWN = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to exactly the "
    "provided target number. You may use the operations +, -, *, and / as needed, but each number "
    "must be used exactly once. Think step-by-step. After reasoning, provide only your final "
    "expression inside \\boxed{} tags without including an equals sign or the target number. For "
    "example: \\boxed{a + b * c}Respond in the following format:\n<reasoning>\nYour reasoning here\n"
    "</reasoning>\n<answer>\n\\boxed{...}\n</answer>")
_D1_SUDOKU = """
Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, top-to-bottom, where '0' represents empty cells.

Rules:
- Fill empty cells with digits 1-4
- Each row must contain digits 1-4 exactly once
- Each column must contain digits 1-4 exactly once
- Each 2x2 box must contain digits 1-4 exactly once

Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.

Respond in this exact format:
<reasoning>
Your step-by-step solving process
</reasoning>
<answer>
[16-character solution string with no spaces or separators]
</answer>
"""
# [choice] d1 has no GPQA prompt; this one follows its math prompt.
_D1_GPQA = ("You are a science expert. You will be given a multiple-choice question. Solve it step by "
            "step, then give only the letter of the correct choice.\nRespond in the following format:\n"
            "<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\nA, B, C or D\n</answer>")
_D1_GENERIC = "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"
D1_SYSTEM = {"gsm8k": _D1_MATH, "math500": _D1_MATH, "countdown": _D1_COUNTDOWN,
             "sudoku": _D1_SUDOKU, "gpqa": _D1_GPQA}

# --- the mro protocol's instruction -------------------------------------------------------------

_MRO_BASE = ("Solve the problem. First think step by step inside <think> </think>, then give only the "
             "final answer inside <answer> </answer>.")
MRO_ANSWER = {
    "gsm8k": "The final answer is a number.",
    "math500": "Write the final answer in LaTeX inside \\boxed{}.",
    "gpqa": "The final answer is the letter (A, B, C or D) of the correct choice.",
    "countdown": "The final answer is an arithmetic expression that uses each given number exactly "
                 "once, without an equals sign or the target.",
    "sudoku": "The final answer is the solved grid as 16 digits, row by row.",
}


def _sudoku_grid(puzzle: str) -> str:
    return "\n".join(puzzle[r * 4:(r + 1) * 4] for r in range(4))


def question_text(task_name: str, example: Example, protocol: str | Protocol) -> str:
    """The problem as the protocol words it (Sudoku and Countdown need their own wording)."""
    p = get_protocol(protocol)
    data = example.data
    if task_name == "sudoku":
        if p.name == "d1":
            return f"Solve the following Sudoku puzzle: {data['puzzle']}\n"
        return ("Fill the blanks (0) of this 4x4 Sudoku so that every row, column and 2x2 box holds "
                f"1, 2, 3 and 4 once:\n{_sudoku_grid(data['puzzle'])}")
    if task_name == "countdown" and p.name == "d1":
        return f"Numbers: {data['nums']}\nTarget: {data['target']}"
    return example.question


def _shot_answer(task_name: str, shot: Example) -> str:
    return str(shot.data.get("answer_text", shot.answer))


def build_prompt(task, example: Example, protocol: str | Protocol,
                 shots: list[Example] | None = None) -> tuple[str | None, str]:
    """``(system, user)`` of ``example`` under ``protocol``.

    ``task`` is a :class:`~mro.tasks.base.Task` or its name; ``shots`` default to the built-in
    examples (:func:`default_shots`); pass ``[]`` for 0-shot. The d1 protocol ignores shots.
    """
    p = get_protocol(protocol)
    name = task if isinstance(task, str) else task.name
    question = question_text(name, example, p)
    if p.name == "d1":
        return None, f"{D1_SYSTEM.get(name, _D1_GENERIC)}\n\n{question}"
    shots = default_shots(name, p) if shots is None else shots
    system = f"{_MRO_BASE} {MRO_ANSWER[name]}" if name in MRO_ANSWER else _MRO_BASE
    tag = p.reasoning_tag
    blocks = [
        f"Question: {question_text(name, s, p)}\nAnswer: <{tag}>\n{s.data['reasoning']}\n</{tag}>\n"
        f"<answer>\n{_shot_answer(name, s)}\n</answer>"
        for s in shots
    ]
    blocks.append(f"Question: {question}\nAnswer:")
    return system, "\n\n".join(blocks)


def response_prefix(protocol: str | Protocol) -> str:
    """Text the response starts with (d1: ``<reasoning>``; mro: nothing)."""
    return get_protocol(protocol).response_prefix


def prompt_ids(model, task, example: Example, protocol: str | Protocol,
               shots: list[Example] | None = None) -> list[int]:
    """Token ids of ``example``'s prompt for ``model`` (a ``DiffusionLM``): :func:`build_prompt`
    through ``model.encode_prompt`` (chat template when the tokenizer has one) plus the prefix."""
    system, user = build_prompt(task, example, protocol, shots)
    return model.encode_prompt(user, system, prefix=response_prefix(protocol))


# --- built-in few-shot examples (hand-written; tests check every answer) ------------------------

def _shot(task: str, i: int, question: str, answer, reasoning: str, **data) -> Example:
    return Example(id=f"{task}-shot-{i}", question=question, answer=answer,
                   data={"reasoning": reasoning, **data})


def _countdown_shot(i: int, nums: list[int], target: int, expression: str, reasoning: str) -> Example:
    return _shot("countdown", i, COUNTDOWN_QUESTION.format(nums=nums, target=target), target, reasoning,
                 nums=nums, target=target, answer_text=expression)


def _sudoku_shot(i: int, puzzle: str, solution: str, reasoning: str) -> Example:
    return _shot("sudoku", i, _sudoku_grid(puzzle), solution, reasoning, puzzle=puzzle, solution=solution)


def _gpqa_shot(i: int, question: str, choices: list[str], letter: str, reasoning: str) -> Example:
    text = question + "\n\n" + "\n".join(f"{k}) {c}" for k, c in zip("ABCD", choices))
    return _shot("gpqa", i, text, letter, reasoning, choices=choices)


SHOTS: dict[str, list[Example]] = {
    "gsm8k": [
        _shot("gsm8k", 0, "Tom has 3 boxes with 12 pencils in each box. He gives away 15 pencils. "
              "How many pencils does he have left?", "21",
              "The boxes hold 3 * 12 = 36 pencils. After giving away 15 he has 36 - 15 = 21 pencils."),
        _shot("gsm8k", 1, "A baker sells muffins for $2 each and cookies for $1.50 each. On Monday she "
              "sells 40 muffins and 30 cookies. How many dollars does she make on Monday?", "125",
              "Muffins bring 40 * 2 = 80 dollars. Cookies bring 30 * 1.50 = 45 dollars. "
              "In total she makes 80 + 45 = 125 dollars."),
        _shot("gsm8k", 2, "Maria reads 18 pages a day. Her book has 270 pages and she has read for 5 "
              "days. How many more days does she need to finish the book?", "10",
              "In 5 days she read 5 * 18 = 90 pages, so 270 - 90 = 180 pages are left. "
              "At 18 pages a day that takes 180 / 18 = 10 days."),
        _shot("gsm8k", 3, "A farmer has 4 times as many chickens as cows. He has 9 cows. Each chicken "
              "lays 5 eggs a week. How many eggs do the chickens lay in 2 weeks?", "360",
              "He has 4 * 9 = 36 chickens. They lay 36 * 5 = 180 eggs a week, "
              "so in 2 weeks they lay 180 * 2 = 360 eggs."),
    ],
    "math500": [
        _shot("math500", 0, "What is the value of $\\sqrt{36} + 2^3$?", "14",
              "$\\sqrt{36} = 6$ and $2^3 = 8$, so the value is $6 + 8 = 14$.",
              answer_text="\\boxed{14}"),
        _shot("math500", 1, "Simplify $\\frac{3}{4} + \\frac{1}{6}$.", "\\frac{11}{12}",
              "With the common denominator 12: $\\frac{9}{12} + \\frac{2}{12} = \\frac{11}{12}$.",
              answer_text="\\boxed{\\frac{11}{12}}"),
        _shot("math500", 2, "Find the sum of the roots of $x^2 - 7x + 10 = 0$.", "7",
              "The quadratic factors as $(x - 2)(x - 5) = 0$, so the roots are 2 and 5 and their "
              "sum is $2 + 5 = 7$.", answer_text="\\boxed{7}"),
        _shot("math500", 3, "How many positive divisors does $36$ have?", "9",
              "$36 = 2^2 \\cdot 3^2$, so it has $(2 + 1)(2 + 1) = 9$ positive divisors.",
              answer_text="\\boxed{9}"),
    ],
    "gpqa": [
        _gpqa_shot(0, "What is the pH of a 0.01 M aqueous solution of HCl at 25 °C?",
                   ["1", "2", "12", "7"], "B",
                   "HCl is a strong acid and dissociates completely, so [H+] = 0.01 M = 10^-2 M and "
                   "pH = -log10(10^-2) = 2."),
        _gpqa_shot(1, "A photon has a wavelength of 500 nm. Approximately what is its energy?",
                   ["0.25 eV", "24.8 eV", "2.48 eV", "1.24 eV"], "C",
                   "E = hc / lambda, and hc is about 1240 eV nm, so E = 1240 / 500 = 2.48 eV."),
        _gpqa_shot(2, "In eukaryotic cells, where does oxidative phosphorylation take place?",
                   ["The Golgi apparatus", "The inner mitochondrial membrane",
                    "The rough endoplasmic reticulum", "The lysosome"], "B",
                   "The electron transport chain and ATP synthase sit in the inner mitochondrial "
                   "membrane, which is where oxidative phosphorylation happens."),
        _gpqa_shot(3, "How many stereoisomers does 2,3-dibromobutane have?", ["2", "4", "1", "3"], "D",
                   "It has two stereocentres, so at most 2^2 = 4, but the molecule is symmetric: "
                   "(2R,3S) and (2S,3R) are the same meso compound. That leaves (2R,3R), (2S,3S) and "
                   "the meso form: 3 stereoisomers."),
        _gpqa_shot(4, "An object is dropped from rest and falls freely for 3 s with g = 9.8 m/s^2 and no "
                   "air resistance. How far does it fall?", ["44.1 m", "29.4 m", "88.2 m", "14.7 m"], "A",
                   "d = g t^2 / 2 = 9.8 * 9 / 2 = 44.1 m."),
    ],
    "countdown": [
        _countdown_shot(0, [3, 5, 7], 22, "3*5+7", "3 * 5 = 15 and 15 + 7 = 22."),
        _countdown_shot(1, [10, 4, 6], 36, "(10-4)*6", "10 - 4 = 6 and 6 * 6 = 36."),
        _countdown_shot(2, [8, 2, 9, 1], 37, "8/2*9+1", "8 / 2 = 4, 4 * 9 = 36 and 36 + 1 = 37."),
        _countdown_shot(3, [25, 5, 3], 2, "25/5-3", "25 / 5 = 5 and 5 - 3 = 2."),
        _countdown_shot(4, [12, 7, 4, 2], 52, "7*4+12*2", "7 * 4 = 28, 12 * 2 = 24 and 28 + 24 = 52."),
    ],
    "sudoku": [
        _sudoku_shot(0, "0042423104030314", "3142423114232314",
                     "Row 4 lacks only 2, so r4c1 = 2. Column 2 lacks only 1, so r1c2 = 1. Row 1 lacks "
                     "only 3, so r1c1 = 3. Column 1 lacks only 1, so r3c1 = 1. Row 3 lacks only 2, so "
                     "r3c3 = 2."),
        _sudoku_shot(1, "0020231401424200", "1423231431424231",
                     "Row 3 lacks only 3, so r3c1 = 3. Column 1 lacks only 1, so r1c1 = 1. Column 2 "
                     "lacks only 4, so r1c2 = 4. Row 1 lacks only 3, so r1c4 = 3. Column 3 lacks only "
                     "3, so r4c3 = 3. Row 4 lacks only 1, so r4c4 = 1."),
        _sudoku_shot(2, "0000320403422431", "4123321413422431",
                     "Row 2 lacks only 1, so r2c3 = 1. Row 3 lacks only 1, so r3c1 = 1. Column 1 lacks "
                     "only 4, so r1c1 = 4. Column 2 lacks only 1, so r1c2 = 1. Column 3 lacks only 2, "
                     "so r1c3 = 2. Row 1 lacks only 3, so r1c4 = 3."),
        _sudoku_shot(3, "0032230130144103", "1432234132144123",
                     "Row 2 lacks only 4, so r2c3 = 4. Row 3 lacks only 2, so r3c2 = 2. Row 4 lacks "
                     "only 2, so r4c3 = 2. Column 1 lacks only 1, so r1c1 = 1. Row 1 lacks only 4, so "
                     "r1c2 = 4."),
        _sudoku_shot(4, "2301040202133120", "2341143242133124",
                     "Row 1 lacks only 4, so r1c3 = 4. Row 3 lacks only 4, so r3c1 = 4. Row 4 lacks "
                     "only 4, so r4c4 = 4. Column 1 lacks only 1, so r2c1 = 1. Row 2 lacks only 3, so "
                     "r2c3 = 3."),
    ],
}


def default_shots(task_name: str, protocol: str | Protocol) -> list[Example]:
    """The first ``shots_for(task)`` built-in examples (none for tasks without built-ins)."""
    n = get_protocol(protocol).shots_for(task_name)
    return SHOTS.get(task_name, [])[:n]
