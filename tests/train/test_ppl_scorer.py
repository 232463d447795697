"""Training the tiny causal PPL scorer: corpus shape, loss falls, the scorer loads."""

import json

import torch

from mro.models.ar import load_scorer
from mro.models.tokenizer import CharTokenizer
from mro.tasks import get_task
from mro.train.ppl_scorer import ARConfig, corpus_batch, train_ar


def test_corpus_has_full_and_partial_grids():
    cfg = ARConfig(batch_size=64)
    texts = corpus_batch(get_task("sudoku"), CharTokenizer(), cfg, 0)
    assert texts == corpus_batch(get_task("sudoku"), CharTokenizer(), cfg, 0)
    lengths = {len(t) for t in texts}
    assert 16 in lengths and min(lengths) < 16 and all(set(t) <= set("1234") for t in texts)


def test_training_and_loading(tmp_path):
    torch.manual_seed(0)
    out = train_ar(ARConfig(out=str(tmp_path / "ar"), steps=30, batch_size=32, lr=3e-3, warmup=2, log_every=1,
                            d_model=32, n_layers=1, n_heads=2, d_ff=64, progress=False))
    log = [r["loss"] for r in map(json.loads, (out.parent / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert log[-1] < 0.8 * log[0]
    scorer = load_scorer(str(out))
    assert len(scorer.perplexity(["1234", "12"])) == 2
