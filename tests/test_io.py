"""mro.io's JSONL reader on gzip-compressed logs (the benchmarks commit finished runs' logs as
``log.jsonl.gz``)."""

from __future__ import annotations

import gzip

import pytest

from mro.errors import MroError
from mro.io import read_jsonl, repair_jsonl


def test_read_jsonl_reads_gzip_like_plain(tmp_path):
    text = '{"kind": "train", "update": 1}\nnot json\n{"kind": "val", "update": 1, "score": 0.5}\n'
    (tmp_path / "log.jsonl").write_text(text)
    (tmp_path / "log.jsonl.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    plain = read_jsonl(tmp_path / "log.jsonl", warn=False)
    assert len(plain) == 2
    assert read_jsonl(tmp_path / "log.jsonl.gz", warn=False) == plain


def test_damaged_gzip_is_one_line_error(tmp_path):
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:30])  # truncated
    with pytest.raises(MroError, match="cannot read"):
        read_jsonl(path)
    path.write_bytes(b"plain text, not gzip")
    with pytest.raises(MroError, match="cannot read"):
        read_jsonl(path)


def test_gzip_is_not_repaired_in_place(tmp_path):
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n'))
    with pytest.raises(MroError, match="compressed"):
        repair_jsonl(path)
