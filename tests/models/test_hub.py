"""Hub fast-fail: offline, a name that is not a local folder fails in seconds, in one line.

The subprocess tests unset ``HF_HUB_OFFLINE`` and point ``HF_ENDPOINT`` at a closed local port, so
it is the reachability probe (not the environment) that sends the loaders to the cache, whether or
not this machine has a network.
"""

import os
import socket
import subprocess
import sys
import time

import pytest

from mro import hub
from mro.errors import MroError

transformers = pytest.importorskip("transformers")


@pytest.fixture
def fresh_probe():
    hub.hub_offline.cache_clear()
    yield
    hub.hub_offline.cache_clear()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(**extra) -> dict:
    """The environment of a subprocess whose hub endpoint refuses connections."""
    env = {k: v for k, v in os.environ.items() if k not in hub._OFFLINE_VARS}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(k, None)
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}", OMP_NUM_THREADS="1", **extra)
    return env


def test_env_switches_the_hub_off(monkeypatch, fresh_probe):
    for var in hub._OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert not hub.offline_by_env()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    assert hub.offline_by_env() and hub.hub_offline()


def test_probe(monkeypatch, fresh_probe):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert hub.reachable("127.0.0.1", port)
    t0 = time.perf_counter()
    assert not hub.reachable("127.0.0.1", closed_port())
    assert not hub.reachable("no-such-host.invalid", 443, timeout=1.0)
    assert time.perf_counter() - t0 < 3
    for var in hub._OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert hub.hub_offline()


def test_probe_goes_through_the_proxy(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org")
    monkeypatch.setenv("https_proxy", "http://proxy.example.org:3128")
    assert hub._probe_address() == ("proxy.example.org", 3128)
    monkeypatch.setenv("no_proxy", "hub.example.org")
    assert hub._probe_address() == ("hub.example.org", 443)


def test_scorer_and_hub_data_fail_fast_offline(monkeypatch, fresh_probe):
    from mro.models.hf import HFCausalScorer
    from mro.tasks import get_task

    for var in hub._OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    t0 = time.perf_counter()
    with pytest.raises(MroError) as err:
        HFCausalScorer.load("gpt2", device="cpu")
    assert "hub is unreachable" in str(err.value) and "--ppl-scorer DIR" in str(err.value)
    with pytest.raises(MroError) as err:
        get_task("gsm8k").load_hub()
    assert "hub is unreachable" in str(err.value) and "pass the local file" in str(err.value)
    assert "\n" not in str(err.value)
    assert time.perf_counter() - t0 < 10


def test_cli_unknown_model_fails_fast_in_one_line(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mro", "eval", "--model", "no-such-model", "--n", "2",
         "--out", str(tmp_path / "run"), "--progress", "false"],
        env=offline_env(), capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mro: error: cannot load 'no-such-model'")
    assert "hub is unreachable" in lines[0] and "--model DIR" in lines[0]
    assert seconds < 10, f"took {seconds:.1f} s"


def test_cached_model_still_loads_offline(tmp_path):
    """A hub id found in the Hugging Face cache loads while the hub is unreachable."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[MASK]", "one", "two"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                        mask_token="[MASK]")
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    repo = tmp_path / "cache" / "models--some-org--tiny-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    BertForMaskedLM(cfg).save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    code = ("from mro.models import load_model; m = load_model('some-org/tiny-bert'); "
            "print(m.kind, m.mask_token_id)")
    proc = subprocess.run([sys.executable, "-c", code], env=offline_env(HF_HUB_CACHE=str(tmp_path / "cache")),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["masked_lm", "2"]
