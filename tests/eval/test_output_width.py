"""Tables read whole in a log: written to a file or pipe (not a terminal), nothing is cut to 80 columns."""

import io
import re

from rich.console import Console
from rich.table import Table

from mro.cli import main
from mro.eval.demo import DemoConfig, run_demo
from mro.eval.report import print_table


def test_a_wide_table_prints_at_full_width_into_a_file():
    table = Table(title="wide")
    headers = [f"a rather long column header number {i}" for i in range(6)]
    for h in headers:
        table.add_column(h)
    table.add_row(*[f"{i}.5" for i in range(6)])
    stream = io.StringIO()
    console = Console(file=stream, width=80)
    assert not console.is_terminal
    print_table(console, table)
    text = stream.getvalue()
    assert "…" not in text and all(h in text for h in headers)  # every header on one line, whole
    assert max(len(line) for line in text.splitlines()) > 80 and console.width == 80  # width restored after


def test_demo_tables_are_whole_in_a_log(tmp_path):
    stream = io.StringIO()
    run_demo(DemoConfig(n=3, tokens_per_step=[1, 6], countdown=False, out=str(tmp_path)),
             console=Console(file=stream, width=80))
    text = stream.getvalue()
    assert "…" not in text
    for header in ("tokens/step", "vanilla (greedy)", "RS-trained (greedy)", "DLM forwards/problem (vanilla | TTS-MRO)",
                   "tokens/forward (vanilla | TTS-MRO)"):
        assert header in text


def test_eval_prints_a_markdown_table_with_cost_columns(tmp_path, capsys):
    assert main(["eval", "--n", "4", "--threshold", "0.5,0.9", "--out", str(tmp_path / "o"), "--progress", "false"]) == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("| decode"))
    assert head == ("| decode | tokens/step | steps | threshold | solved % | cell_accuracy % | n | forwards/example | "
                    "tokens/forward | sec |")
    rows = [line for line in out.splitlines() if re.match(r"\| vanilla \| - \| - \| 0\.[59] \|", line)]
    assert len(rows) == 2 and "…" not in out
