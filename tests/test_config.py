"""Configs: defaults < YAML < flags, one converter, one-line errors."""

import pytest

from mro.config import build, convert
from mro.errors import MroError
from mro.eval.harness import EvalConfig


def test_layering(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("n: 7\ntemperature: 0.3\nsteps: [4, 2]\n")
    cfg = build(EvalConfig, {"temperature": "0.9"}, config_file=str(f))
    assert (cfg.n, cfg.temperature, cfg.steps, cfg.k) == (7, 0.9, [4, 2], 4)
    assert build(EvalConfig, {"steps": "12,6"}).steps == [12, 6]


@pytest.mark.parametrize("values,words", [
    ({"n": "ten"}, "whole number"), ({"temperature": "hot"}, "a number"), ({"progress": "maybe"}, "true or false"),
    ({"colour": "red"}, "unknown config field 'colour'"), ({"k": "0"}, "k must be >= 1"),
])
def test_bad_values_are_one_line(values, words):
    with pytest.raises(MroError, match=words) as e:
        build(EvalConfig, values)
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(MroError, match="does not exist"):
        build(EvalConfig, {}, config_file=str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("n: [1\n")
    with pytest.raises(MroError, match="not valid YAML"):
        build(EvalConfig, {}, config_file=str(bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(MroError, match="mapping"):
        build(EvalConfig, {}, config_file=str(listy))


def test_convert_optional_and_bool():
    assert convert("x", int | None, "none") is None
    assert convert("x", bool, "yes") is True and convert("x", bool, False) is False
    with pytest.raises(MroError):
        convert("x", int, 2.5)


def test_field_metadata_is_checked_once_when_a_config_is_made():
    """choices and bounds come from the field's metadata, for configs made from flags and in Python alike."""
    from dataclasses import dataclass, field

    from mro.config import Config, add_arguments

    calls = []

    @dataclass
    class Toy(Config):
        mode: str = field(default="a", metadata={"help": "mode", "choices": ("a", "b")})
        names: list[str] = field(default_factory=lambda: ["x"], metadata={"help": "names", "choices": lambda: ["x", "y"]})
        rate: float = field(default=0.5, metadata={"help": "rate", "gt": 0, "max": 1})

        def __post_init__(self):
            calls.append(1)
            super().__post_init__()

    assert build(Toy, {"mode": "b", "names": "x,y", "rate": "1"}).names == ["x", "y"]
    for values, words in [({"mode": "c"}, "unknown mode 'c'; choose from a, b"),
                          ({"names": "x,z"}, "unknown names 'z'; choose from x, y"),
                          ({"rate": "0"}, "rate must be > 0"), ({"rate": "1.5"}, "rate must be <= 1")]:
        with pytest.raises(MroError, match=words):
            build(Toy, values)
        with pytest.raises(MroError, match=words):  # the same check without the flag parser
            Toy(**{k: (v.split(",") if k == "names" else (float(v) if k == "rate" else v)) for k, v in values.items()})
    calls.clear()
    Toy()
    assert calls == [1]
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser, Toy)
    assert "(a | b)" in parser.format_help()
