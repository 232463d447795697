"""Bad input through the real CLI: one line ``mro: error: ...``, exit status 2, no traceback, and
no output folder left behind; plus the output folder's lock, a corrupt row in the middle of a
results file, and a resumed run with another batch size.

Every case runs ``mro.cli.main`` in this process (what the ``mro`` script calls), on a tiny model
and ``--n 4``; the lock needs a second, real process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mro.cli import main
from mro.io import OutputLock, read_jsonl
from mro.models.tiny import TinyDLM

FAST = ["--n", "4", "--batch-size", "4", "--progress", "false"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Every broken file a case needs, made once."""
    root = tmp_path_factory.mktemp("bad")
    f: dict[str, str] = {}

    def write(name: str, data: str | bytes) -> str:
        path = root / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(path)

    torch.manual_seed(0)
    good = root / "good-model"
    TinyDLM.create(name="good", d_model=32, n_layers=2, n_heads=2, d_ff=64).save(good)
    (good / "train_config.json").write_text(json.dumps({"task": "sudoku"}))
    f["good"] = str(good)

    def variant(name: str, change) -> str:
        folder = root / name
        shutil.copytree(good, folder)
        change(folder)
        return str(folder)

    weights = (good / "model.safetensors").read_bytes()
    f["truncated"] = variant("truncated", lambda d: (d / "model.safetensors").write_bytes(weights[: len(weights) // 2]))
    f["empty_weights"] = variant("empty-weights", lambda d: (d / "model.safetensors").write_bytes(b""))

    def set_cfg(key, value):
        def change(d):
            cfg = json.loads((d / "config.json").read_text())
            cfg[key] = value
            (d / "config.json").write_text(json.dumps(cfg))
        return change

    f["d_model"] = variant("d-model", set_cfg("d_model", 64))
    f["vocab"] = variant("vocab", set_cfg("vocab_size", 80))
    f["layers"] = variant("layers", set_cfg("n_layers", 3))
    f["bad_shape_value"] = variant("shape-text", set_cfg("d_ff", "wide"))
    f["tok_not_json"] = variant("tok", lambda d: (d / "tokenizer.json").write_text("chars: 0123"))
    f["tok_no_chars"] = variant("tok2", lambda d: (d / "tokenizer.json").write_text('{"type": "char"}'))
    f["cfg_not_json"] = variant("cfg", lambda d: (d / "config.json").write_text('{"model_type": "mro-tiny",'))
    f["cfg_binary"] = variant("cfg-bin", lambda d: (d / "config.json").write_bytes(b"\xff\xfe\x00\x81mro-tiny"))
    f["no_config"] = variant("no-cfg", lambda d: (d / "config.json").unlink())
    f["causal"] = str(root / "causal")
    TinyDLM.create(name="causal", d_model=32, n_layers=1, n_heads=2, d_ff=64, causal=False).save(f["causal"])

    f["yaml_binary"] = write("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    f["yaml_list"] = write("list.yaml", "- 1\n- 2\n")
    f["yaml_unknown"] = write("unknown.yaml", "temprature: 0.5\n")
    f["yaml_bad_type"] = write("badtype.yaml", "temperature: [1, 2]\n")
    f["yaml_nan"] = write("nan.yaml", "temperature: .nan\n")
    f["yaml_broken"] = write("broken.yaml", "steps: [1, 2\n")
    f["yaml_huge"] = write("huge.yaml", "seed: 123456789012345678901234567890\n")
    f["cd_binary"] = write("countdown.jsonl", b'{"nums": [1, 2], "target": 3}\n\xff\xfe\xfd\n')
    f["cd_zero"] = write("countdown-zero.jsonl", '{"nums": [0, 5, 7], "target": 12}\n')
    f["cd_negative"] = write("countdown-neg.jsonl", '{"nums": [3, -5, 7], "target": 5}\n')
    f["cd_d1_zero"] = write("countdown-d1.jsonl", '{"input": "4,0,9", "output": "13"}\n')
    f["sudoku_binary"] = write("sudoku.csv", b"Puzzle,Solution\n\xff\xfe\x00\x01,1\n")
    f["sudoku_bad_row"] = write("sudoku-bad.csv", "Puzzle,Solution\n1234,5678\n")
    f["a_file"] = write("a-file.txt", "not a folder\n")
    f["folder"] = str(root)
    return f


# (verb and flags; "{name}" is a path from ``files``). Each is one kind of mistake.
CASES = [
    # numbers: finite, in range, fitting in 64 bits
    ("eval --tokens-per-step nan", "finite"),
    ("eval --tokens-per-step inf", "finite"),
    ("eval --tokens-per-step 0", "tokens_per_step"),
    ("eval --tokens-per-step -2", "tokens_per_step"),
    ("eval --tokens-per-step 1,abc", "number"),
    ("eval --seed 99999999999999999999999", "64 bits"),
    ("eval --seed -1", "seed"),
    ("eval --seed 1.5", "whole number"),
    ("eval --data-seed 18446744073709551616", "64 bits"),
    ("eval --temperature inf", "finite"),
    ("eval --temperature nan", "finite"),
    ("eval --temperature -0.5", "temperature"),
    ("eval --cfg-scale nan", "finite"),
    ("eval --cfg-scale -1", "cfg_scale"),
    ("eval --ppl-scale inf", "finite"),
    ("eval --ppl-scale 0", "ppl_scale"),
    ("eval --ppl-upper -5", "ppl_upper"),
    ("eval --correct-weight nan", "finite"),
    ("eval --threshold 1.5", "threshold"),
    ("eval --threshold nan", "finite"),
    ("eval --block-length 0", "block_length"),
    ("eval --block-length 5", "divisible"),
    ("eval --steps 1000000", "at most 16"),
    ("eval --steps 0", "steps"),
    ("eval --steps 4,0", "steps"),
    ("eval --steps 4 --tokens-per-step 2", "not both"),
    ("eval --n 0", "n must be"),
    ("eval --n 99999999999", "n must be"),
    ("eval --n abc", "whole number"),
    ("eval --batch-size 0", "batch_size"),
    ("eval --k 0", "k must be"),
    ("eval --w 0", "w must be"),
    ("eval --tv-tokens 0", "tv_tokens"),
    ("eval --suppress-eos maybe", "true or false"),
    ("eval --n 4.5", "whole number"),
    ("eval --k 100000000 --decode tts-mro", "k must be"),
    ("eval --rewards tv=nan", "finite"),
    ("eval --group-reward max", "group_reward"),
    ("eval --select best --decode best-of-n", "select"),
    # names
    ("eval --decode beam", "decode"),
    ("eval --remasking sideways", "remasking"),
    ("eval --rewards tv,bogus", "bogus"),
    ("eval --protocol chat", "protocol"),
    ("eval --task chess", "unknown task"),
    ("eval --model ./no-such-model", "no such folder"),
    ("eval --dtype fp8", "dtype"),
    ("eval --device tpu", "device"),
    ("eval --device ''", "device"),
    ("eval --task-options min_blanks", "key=value"),
    ("eval --task-options min_blanks=20", "blanks"),
    ("eval --task-options colour=red", "option"),
    ("eval --task-options min_blanks=-3", "blanks"),
    ("eval --gen-length 7", "gen_length"),
    # flags themselves
    ("eval --tokens-per-stpe 3", "unrecognized"),
    ("eval --n", "expected one argument"),
    ("frobnicate", "invalid choice"),
    ("", "required"),
    # files given as input
    ("eval --config {yaml_binary}", "not UTF-8"),
    ("eval --config {folder}/missing.yaml", "does not exist"),
    ("eval --config {folder}", "folder"),
    ("eval --config /dev/null", "not a regular file"),
    ("eval --config {yaml_list}", "mapping"),
    ("eval --config {yaml_unknown}", "unknown config field"),
    ("eval --config {yaml_bad_type}", "temperature"),
    ("eval --config {yaml_nan}", "finite"),
    ("eval --config {yaml_broken}", "YAML"),
    ("eval --config {yaml_huge}", "64 bits"),
    ("eval --task countdown --model {good} --data {cd_binary}", "UTF-8"),
    ("eval --task countdown --model {good} --data {cd_zero}", "positive"),
    ("eval --task countdown --model {good} --data {cd_negative}", "positive"),
    ("eval --task countdown --model {good} --data {cd_d1_zero}", "positive"),
    ("eval --data {sudoku_binary}", "UTF-8"),
    ("eval --data {sudoku_bad_row}", "sudoku-bad.csv:2"),
    ("eval --data {folder}/missing.csv", "does not exist"),
    # model folders
    ("eval --model {truncated}", "damaged"),
    ("eval --model {empty_weights}", "damaged"),
    ("eval --model {d_model}", "d_model = 64"),
    ("eval --model {vocab}", "vocab_size = 80"),
    ("eval --model {layers}", "n_layers = 3"),
    ("eval --model {bad_shape_value}", "d_ff"),
    ("eval --model {tok_not_json}", "not valid JSON"),
    ("eval --model {tok_no_chars}", "chars"),
    ("eval --model {cfg_not_json}", "config.json"),
    ("eval --model {cfg_binary}", "config.json"),
    ("eval --model {no_config}", "config.json"),
    ("eval --decode tts-mro --ppl-scorer {causal}", "not a causal"),
    # model and task must fit
    ("eval --model sudoku-tiny --task countdown", "(shipped: --model countdown-tiny)"),
    ("eval --model {good} --task countdown", "trained on sudoku"),
    ("eval --model sudoku-tiny --task gsm8k --data {folder}/missing.jsonl", "does not exist"),
    # output folders
    ("eval --out ''", "empty"),
    ("eval --out {a_file}", "is a file"),
    ("eval --out {a_file}/sub", "is a file"),
    ("eval --out /dev/null/sub", "is a file"),
    # other verbs
    ("show --index -1", "index must be >= 0"),
    ("show --index 100000000", "index"),
    ("show --steps 2,4", "single"),
    ("show --temperature nan", "finite"),
    ("analyze correlation --bootstrap 0", "bootstrap"),
    ("analyze correlation --seeds 1", "seeds"),
    ("analyze correlation --seeds 99999", "seeds"),
    ("analyze correlation --temperature 0", "temperature"),
    ("analyze correlation --tokens-per-step nan", "finite"),
    ("analyze correlation --model sudoku-tiny --task countdown --task-options ''", "trained on sudoku"),
    ("demo --n 0", "n must be"),
    ("demo --tokens-per-step nan", "finite"),
    ("demo --out ''", "empty"),
    ("train sft --threads -4", "threads"),
    ("train sft --steps 0", "steps"),
    ("train sft --lr nan", "finite"),
    ("train sft --lr -1", "lr"),
    ("train sft --task chess", "unknown task"),
    ("train sft --d-model 30 --n-heads 4", "d_model"),
    ("train sft --seed 99999999999", "seed"),
    ("train sft --min-blanks 13 --max-blanks 12", "blanks"),
    ("train sft --warmup -1", "warmup"),
    ("train ar --partial-fraction 1.5", "partial_fraction"),
    ("train ar --partial-fraction nan", "finite"),
]


def _argv(case: str, files: dict, out: Path) -> list[str]:
    import shlex

    argv = shlex.split(case.format(**files))
    if "--out" not in argv and argv[:1] in (["eval"], ["show"], ["analyze"], ["demo"], ["train"]):
        argv += ["--out", str(out)]
    if argv[:1] in (["eval"], ["show"]) and "--n" not in argv:
        argv += FAST[:2]
    return argv


@pytest.mark.parametrize("case,expect", CASES, ids=[c or "(no verb)" for c, _ in CASES])
def test_bad_input_is_one_line_exit_2(case, expect, files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to the current folder would show
    out = tmp_path / "out"
    code = main(_argv(case, files, out))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("mro: error: "), err
    assert "Traceback" not in err
    assert expect.lower() in lines[0].lower(), lines[0]
    assert not out.exists(), f"{case!r} left {sorted(p.name for p in out.iterdir())}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "something was written to the current folder"


def test_cuda_on_a_cpu_only_torch(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert main(["eval", "--device", "cuda", "--out", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not available" in err and not (tmp_path / "o").exists()


def test_the_count_in_the_readme_is_this_module():
    """The README's reliability paragraph quotes how many bad inputs this module tries."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"{len(CASES)} bad inputs" in readme


# --- output folders: lock, corruption, resume identity --------------------------------------

def _eval(out: Path, *extra: str) -> int:
    return main(["eval", "--steps", "4,2", "--out", str(out), "--n", "6", "--batch-size", "4",
                 "--progress", "false", *extra])


def test_a_second_run_on_a_locked_folder_stops_with_one_line(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out):  # this test process is "the running one"
        proc = subprocess.run([sys.executable, "-m", "mro", "eval", "--out", str(out), *FAST],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"in use by another mro run (pid {os.getpid()})" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing of the second run
    # the lock dies with its holder: the folder is usable again
    assert _eval(out) == 0


def test_corrupt_line_in_the_middle_is_dropped_alone(tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval(out) == 0
    path = out / "examples.jsonl"
    good = path.read_text().splitlines()
    assert len(good) == 12
    damaged = good[:3] + ['{"decode": "vanilla", "steps": 4, "ind'] + good[4:]
    path.write_text("\n".join(damaged) + "\n")
    capsys.readouterr()
    assert len(read_jsonl(path, warn=False)) == 11  # only the damaged row is missing
    assert _eval(out) == 0
    err = capsys.readouterr().err
    assert "1 corrupt line(s) dropped (line 4)" in err
    again = read_jsonl(path)
    def same(rows):  # every field but the timing
        return sorted(json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) for r in rows)

    assert len(again) == 12
    assert same(again) == same(map(json.loads, good))  # the damaged row recomputed exactly
    summary = json.loads((out / "summary.json").read_text())
    assert [r["n"] for r in summary["results"]] == [6, 6]


def test_resume_with_another_batch_size_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval(out) == 0
    before = (out / "examples.jsonl").read_text()
    capsys.readouterr()
    assert _eval(out, "--batch-size", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "batch_size" in err
    assert (out / "examples.jsonl").read_text() == before
    assert _eval(out) == 0  # the same settings resume (nothing left to do)
    assert (out / "examples.jsonl").read_text() == before
