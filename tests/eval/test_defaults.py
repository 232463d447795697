"""Correct by default: search decoders get diversity, steps fit the masks, show replays eval."""

import json

import pytest

from mro.cli import main
from mro.errors import MroError
from mro.eval.harness import EvalConfig, decode_config, run_eval
from mro.eval.show import ShowConfig, decode_one
from mro.search.tts import SEARCH_TEMPERATURE
from mro.tasks import get_task


def test_search_decoders_default_to_a_temperature(tmp_path):
    out = str(tmp_path / "o")
    for decode in ("tts-mro", "tts-cbr", "best-of-n"):
        assert decode_config(EvalConfig(decode=decode, out=out), 16, 4).temperature == SEARCH_TEMPERATURE
        assert decode_config(EvalConfig(decode=decode, temperature=0.3, out=out), 16, 4).temperature == 0.3
        assert decode_config(EvalConfig(decode=decode, temperature=0.0, k=1, out=out), 16, 4).temperature == 0.0
    assert decode_config(EvalConfig(out=out), 16, 4).temperature == 0.0  # vanilla stays greedy


def test_explicit_temperature_zero_with_k_candidates_is_one_line(tmp_path, capsys):
    with pytest.raises(MroError, match="needs a temperature > 0"):
        EvalConfig(decode="tts-mro", temperature=0.0, k=4, out=str(tmp_path / "o"))
    code = main(["eval", "--decode", "best-of-n", "--temperature", "0", "--k", "3", "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mro: error: --decode best-of-n with k=3 needs a temperature > 0")
    assert err.count("\n") == 1


def test_default_steps_are_one_per_masked_position(tmp_path):
    n = 6
    examples = get_task("sudoku").generate(n, seed=1234, split="test")
    most = max(ex.data["puzzle"].count("0") for ex in examples)
    assert most < 16
    s = run_eval(EvalConfig(n=n, out=str(tmp_path / "o"), progress=False))
    assert [r["steps"] for r in s["results"]] == [most]
    assert s["results"][0]["nfe_per_example"] == most


@pytest.mark.parametrize("decode", ["tts-mro", "vanilla"])
def test_show_replays_the_row_that_eval_decoded(tmp_path, decode):
    common = dict(n=10, batch_size=4, steps=[3], decode=decode, k=3, rewards="tv,q", seed=7,
                  task_options="min_blanks=10,max_blanks=12")
    if decode == "vanilla":
        common["temperature"] = 0.8
    run_eval(EvalConfig(out=str(tmp_path / "eval"), progress=False, **common))
    rows = {r["index"]: r for r in map(json.loads, (tmp_path / "eval" / "examples.jsonl").read_text().splitlines())}
    for index in (0, 6, 9):
        model, task, example, traj, details, dcfg = decode_one(ShowConfig(index=index, out=str(tmp_path / "show"),
                                                                          **common))
        assert model.tokenizer.decode(traj.response[0].tolist()) == rows[index]["response"]
        assert details.get("search") == rows[index].get("search")
