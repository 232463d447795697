"""Test-time scaling: equals vanilla when it should, picks the argmax, votes only at the end."""

import pytest
import torch

from mro.errors import MroError
from mro.models.ar import TinyARScorer
from mro.models.tiny import TinyDLM
from mro.rewards.multi import MultiReward
from mro.sampling import DecodeConfig, generate
from mro.search import SearchConfig, get_decoder
from mro.tasks import get_task


@pytest.fixture(scope="module")
def sudoku_batch(tiny_model):
    task = get_task("sudoku")
    laid = [task.tiny_input(ex, tiny_model.tokenizer) for ex in task.generate(6, seed=3)]
    return task, [x.prompt_ids for x in laid], [x.response_ids for x in laid]


@pytest.fixture(scope="module")
def scorer():
    torch.manual_seed(0)
    return TinyARScorer(TinyDLM.create(name="ar", d_model=32, n_layers=1, n_heads=2, d_ff=64, causal=True))


def test_k1_rewards_off_equals_vanilla(tiny_model, sudoku_batch):
    task, prompts, responses = sudoku_batch
    cfg = DecodeConfig(gen_length=16, steps=6)
    vanilla = generate(tiny_model, prompts, cfg, responses=responses)
    for w in (1, 4, 6):
        search = SearchConfig(k=1, w=w, rewards="tv=0")
        res = get_decoder("tts-mro")(tiny_model, prompts, responses, cfg, task=task, search=search)
        assert torch.equal(res.trajectory.tokens, vanilla.tokens)
        assert torch.equal(res.trajectory.commit_step, vanilla.commit_step)
        assert res.nfe[0] == 6


def test_chosen_candidate_is_the_argmax(tiny_model, sudoku_batch, scorer):
    task, prompts, responses = sudoku_batch
    cfg = DecodeConfig(gen_length=16, steps=6, temperature=1.0)
    search = SearchConfig(k=4, w=2, rewards="tv,ppl,q", tv_tokens="1")
    reward = MultiReward(tiny_model, task, search, scorer=scorer)
    res = get_decoder("tts-mro")(tiny_model, prompts, responses, cfg, task=task, search=search, reward=reward,
                                 generator=torch.Generator().manual_seed(0))
    assert res.trajectory.done
    for d in res.details:
        assert [seg["segment"] for seg in d["search"]] == [[0, 2], [2, 4], [4, 6]]
        for seg in d["search"]:
            assert seg["scores"][seg["chosen"]] == max(seg["scores"])
    # 4 candidates x 6 steps, less the shared first step of each of 3 segments, + 1 verified token per
    # candidate and segment
    assert res.nfe[0] == pytest.approx(4 * 6 - 3 * 3 + 4 * 3)
    assert res.scorer_calls[0] == pytest.approx(4 * 3)


def test_majority_vote_only_on_the_final_segment(tiny_model, sudoku_batch, scorer, monkeypatch):
    task, prompts, responses = sudoku_batch
    calls = []
    real = MultiReward.vote_targets

    def spy(self, texts, group):
        calls.append(len(texts))
        return real(self, texts, group)

    monkeypatch.setattr(MultiReward, "vote_targets", spy)
    search = SearchConfig(k=3, w=1, rewards="tv,q")
    get_decoder("tts-mro")(tiny_model, prompts, responses, DecodeConfig(gen_length=16, steps=4, temperature=1.0),
                           task=task, search=search, generator=torch.Generator().manual_seed(1))
    assert calls == [6 * 3]  # 4 segments, one vote: the final one, over all candidates


def test_cbr_and_best_of_n(tiny_model, sudoku_batch, scorer):
    task, prompts, responses = sudoku_batch
    cfg = DecodeConfig(gen_length=16, steps=4, temperature=1.0)
    cbr = get_decoder("tts-cbr")(tiny_model, prompts, responses, cfg, search=SearchConfig(k=3, w=2),
                                 generator=torch.Generator().manual_seed(2))
    for d in cbr.details:
        for seg in d["search"]:
            assert all(0 < s <= 1 for s in seg["scores"]) and seg["scores"][seg["chosen"]] == max(seg["scores"])
    bon = get_decoder("best-of-n")(tiny_model, prompts, responses, cfg, task=task, search=SearchConfig(k=5),
                                   generator=torch.Generator().manual_seed(3))
    assert bon.nfe[0] == 5 * 4 - 4 and len(bon.details[0]["search"]) == 1


def test_cbr_leaves_the_greedy_candidate_out_by_default(tiny_model, sudoku_batch):
    """With one-step segments the greedy candidate's commits are the most confident, so a CBR search
    that includes it is greedy decoding; by default it samples all k candidates and so differs."""
    task, prompts, responses = sudoku_batch
    greedy = generate(tiny_model, prompts, DecodeConfig(gen_length=16, steps=4), responses=responses)
    hot = DecodeConfig(gen_length=16, steps=4, temperature=2.0)

    def cbr(**kw):
        return get_decoder("tts-cbr")(tiny_model, prompts, responses, hot, search=SearchConfig(k=4, w=1, **kw),
                                      generator=torch.Generator().manual_seed(0)).trajectory.tokens

    assert torch.equal(cbr(greedy_candidate=True), greedy.tokens)
    assert not torch.equal(cbr(), greedy.tokens)
    assert SearchConfig().greedy_for("tts-cbr") is False and SearchConfig().greedy_for("tts-mro") is True
    assert SearchConfig(greedy_candidate=True).greedy_for("tts-cbr") is True


def test_best_of_n_by_reward_keeps_the_best_by_a_hand_computed_reward(tiny_model, sudoku_batch, scorer):
    """Each candidate's score is w_ppl * R_ppl + w_q * R_q (R_q against the majority answer of the
    prompt's candidates), recomputed here by hand, and the kept response is the best one."""
    from mro.rewards.perplexity import ppl_to_reward
    from mro.rewards.quality import majority_vote, quality_reward
    from mro.sampling import denoise, start

    task, prompts, responses = sudoku_batch
    k, cfg = 5, DecodeConfig(gen_length=16, steps=4, temperature=1.0)
    search = SearchConfig(k=k, select="reward", rewards="ppl=2,q=0.5", greedy_candidate=False)
    res = get_decoder("best-of-n")(tiny_model, prompts, responses, cfg, task=task, search=search,
                                   reward=MultiReward(tiny_model, task, search, scorer=scorer),
                                   generator=torch.Generator().manual_seed(3))
    # the same k candidates, decoded directly
    cands = denoise(tiny_model, start(tiny_model, prompts, responses, gen_length=16).repeat_interleave(k), cfg,
                    generator=torch.Generator().manual_seed(3), replicas=k)
    texts = [tiny_model.tokenizer.decode(r.tolist()) for r in cands.response]
    for i in range(len(prompts)):
        mine = texts[i * k:(i + 1) * k]
        target = majority_vote([task.extract(t) for t in mine], task.same_answer)
        hand = [2 * ppl_to_reward(scorer.perplexity([t])[0], 100, 100)
                + 0.5 * quality_reward(task, None, t, target, 1.0 if target is not None else 0.0, 1.0) for t in mine]
        seg = res.details[i]["search"][0]
        assert seg["scores"] == pytest.approx(hand, abs=1e-4)
        best = max(range(k), key=lambda j: hand[j])
        assert seg["chosen"] == best
        assert torch.equal(res.trajectory.tokens[i], cands.tokens[i * k + best])


def test_greedy_candidate_is_kept_on_ties_and_temperature_zero_is_refused(tiny_model, sudoku_batch):
    """Candidate 0 continues greedily: with every score equal the search is greedy decoding; and a
    search over k > 1 candidates at temperature 0 (all identical) is a one-line error."""
    task, prompts, responses = sudoku_batch
    greedy = generate(tiny_model, prompts, DecodeConfig(gen_length=16, steps=4), responses=responses)
    hot = DecodeConfig(gen_length=16, steps=4, temperature=2.0)
    res = get_decoder("tts-mro")(tiny_model, prompts, responses, hot, task=task,
                                 search=SearchConfig(k=4, w=1, rewards="tv=0"),  # every score 0: ties
                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.trajectory.tokens, greedy.tokens)
    off = get_decoder("tts-mro")(tiny_model, prompts, responses, hot, task=task,
                                 search=SearchConfig(k=4, w=1, rewards="tv=0", greedy_candidate=False),
                                 generator=torch.Generator().manual_seed(0))
    assert not torch.equal(off.trajectory.tokens, greedy.tokens)
    for decode in ("tts-mro", "tts-cbr", "best-of-n"):
        with pytest.raises(MroError, match="needs a temperature > 0") as e:
            get_decoder(decode)(tiny_model, prompts, responses, DecodeConfig(gen_length=16, steps=4), task=task,
                                search=SearchConfig(k=4, rewards="tv=0"))
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs,words", [
    (dict(k=0), "k must be >= 1"), (dict(w=0), "w must be >= 1"), (dict(select="best"), "select"),
    (dict(rewards="tv,len"), "unknown reward"), (dict(rewards="tv=high"), "finite number"),
    (dict(tv_tokens="some"), "tv_tokens"),
])
def test_bad_settings(kwargs, words):
    with pytest.raises(MroError, match=words) as e:
        SearchConfig(**kwargs)
    assert "\n" not in str(e.value)


def test_unknown_decode_and_negative_temperature():
    with pytest.raises(MroError, match="unknown decode method"):
        get_decoder("beam")
    with pytest.raises(MroError, match="temperature"):
        DecodeConfig(gen_length=16, steps=4, temperature=-0.5)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("decode", ["tts-mro", "tts-cbr", "best-of-n"])
def test_cached_search_equals_uncached_on_a_one_layer_model(one_layer_model, sudoku_batch, cache, decode):
    task, prompts, responses = sudoku_batch
    search = SearchConfig(k=3, w=1, rewards="tv", select="reward")
    runs = {}
    for c in ("none", cache):
        cfg = DecodeConfig(gen_length=16, steps=8, block_length=4, temperature=0.8, cache=c)
        runs[c] = get_decoder(decode)(one_layer_model, prompts, responses, cfg, task=task, search=search,
                                      generator=torch.Generator().manual_seed(4))
    assert torch.equal(runs[cache].trajectory.tokens, runs["none"].trajectory.tokens)
    assert runs[cache].trajectory.cache is None
    for a, b in zip(runs[cache].details, runs["none"].details):
        assert [s["chosen"] for s in a["search"]] == [s["chosen"] for s in b["search"]]
        for sa, sb in zip(a["search"], b["search"]):
            assert sa["scores"] == pytest.approx(sb["scores"], abs=1e-4)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_candidates_share_the_cache_and_verification_reads_it(tiny_model, sudoku_batch, counting, cache):
    """w = 1, two steps per block: a segment at a block's start fills the cache once per prompt for
    its k candidates; a segment inside the block runs one window per prompt (its first step, shared)
    and no full forward; verifying a segment's commits reads the candidates' caches."""
    task, prompts, responses = sudoku_batch
    b, k, blocks = len(prompts), 3, 4
    cfg = DecodeConfig(gen_length=16, steps=8, block_length=4, temperature=0.8, cache=cache)
    model = counting(tiny_model)
    get_decoder("tts-cbr")(model, prompts, responses, cfg, search=SearchConfig(k=k, w=1),
                           generator=torch.Generator().manual_seed(0))
    assert (model.full_rows, model.window_rows, model.at_rows) == (b * blocks, b * blocks, 0)
    model = counting(tiny_model)
    get_decoder("tts-mro")(model, prompts, responses, cfg, task=task, search=SearchConfig(k=k, w=1, rewards="tv"),
                           generator=torch.Generator().manual_seed(0))
    assert model.full_rows == b * blocks and model.at_rows == 0
    assert model.window_rows > b * blocks  # the verification rows went through the cache
