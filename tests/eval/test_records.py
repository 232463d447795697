"""What a result records: the report writer the benchmarks share."""

import json

from mro.eval.records import save_report


def test_save_report_writes_the_table_and_the_data_with_hardware_and_date(tmp_path, capsys):
    lines = ["| a | b |", "|---|---|", "| 1 | 2 |"]
    save_report(tmp_path / "results", "speed", lines, {"rows": [{"ratio": 1.4}]})
    assert (tmp_path / "results" / "speed.md").read_text() == "\n".join(lines) + "\n"
    data = json.loads((tmp_path / "results" / "speed.json").read_text())
    assert data["rows"] == [{"ratio": 1.4}] and "torch" in data["hardware"] and data["date"].startswith("20")
    assert "| 1 | 2 |" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["speed.json", "speed.md"]  # no temporaries left
