"""Hugging Face backends: tiny models built from configs in the test, no downloads.

``MRO_TEST_DEVICE=cuda`` runs them on a GPU (``benchmarks/gpu_smoke.sh`` does).
"""

import math
import os
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from mro.errors import MroError  # noqa: E402
from mro.models import load_model  # noqa: E402
from mro.models.hf import HFCausalScorer, HFDiffusionLM  # noqa: E402
from mro.sampling import DecodeConfig, generate  # noqa: E402

DEVICE = os.environ.get("MRO_TEST_DEVICE", "cpu")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "zero one two three four five six seven eight nine plus minus is the answer what".split()


def word_tokenizer(**specials) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over a tiny vocabulary (no files, no downloads)."""
    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   mask_token="[MASK]", cls_token="[CLS]", sep_token="[SEP]", **specials)


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    tok = word_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    return HFDiffusionLM.from_module(BertForMaskedLM(cfg).to(DEVICE), tok, name="tiny-bert")


def test_bert_reads_special_ids(bert):
    assert bert.kind == "masked_lm"
    assert bert.mask_token_id == bert.tokenizer.convert_tokens_to_ids("[MASK]")
    assert bert.pad_token_id == 0
    assert bert.vocab_size == len(SPECIALS) + len(WORDS)


def test_bert_drives_the_sampler_with_left_padding(bert):
    prompts = [bert.encode_prompt("what is two plus three"), bert.encode_prompt("one")]
    cfg = DecodeConfig(gen_length=8, steps=4, block_length=4)
    traj = generate(bert, prompts, cfg)
    response = traj.tokens[:, traj.prompt_length:]
    assert response.shape == (2, 8)
    assert not (response == bert.mask_token_id).any()
    # a left-padded row sees the same logits as the row alone (mask + 0-based positions)
    tokens, attn = traj.tokens, traj.attention_mask
    batched = bert.logits(tokens, attn)[1, attn[1].bool()]
    alone = bert.logits(tokens[1:, attn[1].bool()], None)[0]
    tol = 1e-5 if DEVICE == "cpu" else 1e-3  # GPU kernels differ slightly between shapes
    torch.testing.assert_close(batched, alone, atol=tol, rtol=tol)


def test_local_path_round_trip(bert, tmp_path):
    bert.module.save_pretrained(tmp_path)
    bert.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device=DEVICE, dtype="fp32")
    assert isinstance(loaded, HFDiffusionLM) and loaded.kind == "masked_lm"
    assert (loaded.mask_token_id, loaded.pad_token_id) == (bert.mask_token_id, bert.pad_token_id)
    ids = torch.tensor([bert.encode_prompt("one plus two is three")], device=DEVICE)
    torch.testing.assert_close(loaded.logits(ids), bert.logits(ids))
    assert loaded.encode_prompt("one plus two") == bert.encode_prompt("one plus two")


def test_unreachable_hub_id_is_a_one_line_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MroError) as err:
        load_model("no-such-org/no-such-diffusion-model", device="cpu")
    message = str(err.value)
    assert "\n" not in message
    assert "no-such-org/no-such-diffusion-model" in message and "local" in message and "--model" in message


def test_missing_local_folder_is_named():
    with pytest.raises(MroError, match="no such folder"):
        load_model("./no/such/model/folder")


class FakeDream(torch.nn.Module):
    """Dream-shaped: logits at i peak at the input token i, i.e. they 'predict' position i + 1."""

    vocab = 11

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(model_type="Dream", mask_token_id=10, eos_token_id=[2, 3],
                                      pad_token_id=0, vocab_size=self.vocab)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = {}

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        self.seen = {"attention_mask": attention_mask, "position_ids": position_ids}
        logits = torch.nn.functional.one_hot(input_ids, self.vocab).float()
        return SimpleNamespace(logits=logits)


def test_dream_logits_are_shifted_right_by_one():
    module = FakeDream()
    model = HFDiffusionLM.from_module(module, SimpleNamespace(mask_token_id=None, pad_token_id=None,
                                                               eos_token_id=None), name="fake-dream")
    assert model.kind == "dream" and model.mask_token_id == 10
    assert model.eos_token_ids == [2, 3] and model.eos_token_id == 2 and model.pad_token_id == 0
    ids = torch.tensor([[4, 5, 6, 7]])
    logits = model.logits(ids, torch.ones_like(ids))
    assert logits.argmax(-1).tolist() == [[4, 4, 5, 6]]  # position i reads raw logits at i - 1
    assert module.seen["attention_mask"] == "full"
    model.logits(torch.tensor([[0, 5, 6]]), torch.tensor([[0, 1, 1]]))
    assert module.seen["attention_mask"].shape == (1, 1, 3, 3)
    assert module.seen["position_ids"].tolist() == [[1, 0, 1]]


def test_mask_id_comes_from_config_then_tokenizer_else_error():
    module = FakeDream()
    module.config.model_type, module.config.mask_token_id = "llada", 9
    tok = SimpleNamespace(mask_token_id=4, pad_token_id=1, eos_token_id=None)
    assert HFDiffusionLM.from_module(module, tok).mask_token_id == 9
    module.config.mask_token_id = None
    assert HFDiffusionLM.from_module(module, tok).mask_token_id == 4
    tok.mask_token_id = None
    with pytest.raises(MroError, match="no mask token id"):
        HFDiffusionLM.from_module(module, tok)


def test_encode_prompt_applies_the_chat_template(bert):
    tok = word_tokenizer()
    tok.chat_template = ("{% for m in messages %}[CLS] {{ m['content'] }} [SEP] {% endfor %}"
                         "{% if add_generation_prompt %}the answer is{% endif %}")
    model = HFDiffusionLM.from_module(bert.module, tok)
    ids = model.encode_prompt("two plus two", system="what", prefix=" four")
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "what", "[SEP]", "[CLS]", "two", "plus", "two",
                                              "[SEP]", "the", "answer", "is", "four"]
    assert bert.encode_prompt("two plus two", system="what") == tok("what\n\ntwo plus two")["input_ids"]


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    tok = word_tokenizer(bos_token="[CLS]")
    cfg = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=2)
    return HFCausalScorer(GPT2LMHeadModel(cfg).to(DEVICE), tok, name="tiny-gpt2")


def _hand_ppl(scorer, text):
    ids = [scorer.tokenizer.bos_token_id] + scorer.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ids], device=DEVICE)
    with torch.no_grad():
        logits = scorer.module(ids).logits[0, :-1].float()
    nll = -torch.log_softmax(logits, -1)[torch.arange(ids.shape[1] - 1, device=DEVICE), ids[0, 1:]]
    return math.exp(nll.mean().item())


def test_perplexity_matches_a_hand_computation(gpt2):
    texts = ["one plus two is three", "five", "what is the answer to six minus four", ""]
    ppl = gpt2.perplexity(texts, batch_size=3)
    for text, value in zip(texts[:3], ppl[:3]):
        assert value == pytest.approx(_hand_ppl(gpt2, text), rel=1e-4)
    assert ppl[3] == math.inf  # documented: an empty text scores nothing
    assert gpt2.perplexity(texts[:2], batch_size=1) == pytest.approx(ppl[:2], rel=1e-5)


def test_perplexity_without_bos_scores_from_the_second_token(gpt2):
    scorer = HFCausalScorer(gpt2.module, word_tokenizer(), name="no-bos")
    assert scorer.bos_token_id is None
    one, two = scorer.perplexity(["five", "five six"])
    assert one == math.inf and math.isfinite(two)


def test_rewards_and_one_tts_decode_run_on_the_hf_backends(bert, gpt2):
    from mro.rewards.multi import MultiReward
    from mro.search.tts import SearchConfig, tts_mro
    from mro.tasks import get_task

    task = get_task("gsm8k")
    search = SearchConfig(k=2, w=2)  # all three rewards: tv, ppl (the tiny GPT-2), q
    reward = MultiReward(bert, task, search, scorer=gpt2)
    prompts = [bert.encode_prompt("what is two plus three"), bert.encode_prompt("one")]
    cfg = DecodeConfig(gen_length=8, steps=4, block_length=4, temperature=0.5)
    generator = torch.Generator(device=DEVICE).manual_seed(0)
    result = tts_mro(bert, prompts, None, cfg, generator=generator, task=task, search=search, reward=reward)
    traj = result.trajectory
    assert traj.batch_size == 2 and not (traj.tokens[:, traj.prompt_length:] == bert.mask_token_id).any()
    assert reward.dlm_forwards > 0 and reward.scorer_texts > 0
