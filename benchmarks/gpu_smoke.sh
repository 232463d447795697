#!/usr/bin/env bash
# GPU smoke check of the Hugging Face path, under 10 minutes on one CUDA GPU:
#   1. the HF backend tests (tests/models/test_hf.py) with their models on the GPU;
#   2. vanilla vs test-time-scaling decoding (tts-cbr, tts-mro) of a ~110M-parameter masked LM
#      (BERT-base shape, random weights, built from a config: no downloads), timed, with a
#      GPT-2-small-shaped PPL scorer for tts-mro. Random weights: the timings are real, the
#      answers are not.
#   3. KV-cache decoding speed (--cache none | prefix | dual, and LLaDA's reference loop) of native
#      LLaDA and Dream at the real LLaDA-8B and Dream-7B shapes in bf16 (random weights drawn on
#      the GPU), prompt 256 + 256, block 32, 128 steps, batch 1 and 8, every block timed
#      (benchmarks/cache_speed.py; SIZE=tiny: the scaled CPU shape, one block, batch 1, no reference).
#
#   bash benchmarks/gpu_smoke.sh                         # CUDA, BERT-base size
#   DEVICE=cpu SIZE=tiny bash benchmarks/gpu_smoke.sh    # a quick dry run of the script on CPU
#
# Writes gpu_smoke.json (timings, device, versions) to $OUT if set, else benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
export DEVICE=${DEVICE:-cuda} SIZE=${SIZE:-base} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_smoke: no CUDA device visible to torch (run with DEVICE=cpu SIZE=tiny for a dry run)" >&2
  exit 1
fi
"$PY" -c "import torch; print('torch', torch.__version__, '| device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

echo "== 1. HF backend tests on $DEVICE"
MRO_TEST_DEVICE=$DEVICE timeout 300 "$PY" -m pytest tests/models/test_hf.py -q -p no:cacheprovider

echo "== 2. vanilla vs TTS decoding of a masked LM built from a config ($SIZE)"
timeout 400 "$PY" - <<'EOF'
import json, os, time

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from mro.models.hf import HFCausalScorer, HFDiffusionLM
from mro.rewards.multi import MultiReward
from mro.sampling import DecodeConfig
from mro.search.decoders import get_decoder
from mro.search.tts import SearchConfig
from mro.tasks import get_task

device, size = os.environ["DEVICE"], os.environ["SIZE"]
base = size == "base"
vocab = 30522 if base else 512
words = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, **{f"w{i}": i for i in range(5, vocab)}}
raw = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
raw.pre_tokenizer = pre_tokenizers.Whitespace()
tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]",
                              bos_token="[CLS]", eos_token="[SEP]")
dtype = torch.bfloat16 if device == "cuda" else torch.float32
torch.manual_seed(0)
shape = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072) if base \
    else dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
bert = BertForMaskedLM(BertConfig(vocab_size=vocab, max_position_embeddings=512, **shape))
model = HFDiffusionLM.from_module(bert.to(device, dtype), tok, name=f"bert-{size}-random")
gshape = dict(n_embd=768, n_layer=12, n_head=12) if base else dict(n_embd=64, n_layer=2, n_head=2)
scorer = HFCausalScorer(GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=512, **gshape)).to(device, dtype),
                        tok, name=f"gpt2-{size}-random")

batch, prompt_len = (8, 64) if base else (2, 8)
gen_length, steps, block = (256, 128, 32) if base else (16, 8, 8)
g = torch.Generator().manual_seed(0)
prompts = torch.randint(5, vocab, (batch, prompt_len), generator=g).tolist()
cfg = DecodeConfig(gen_length=gen_length, steps=steps, block_length=block, temperature=0.25)
task = get_task("gsm8k")
search = SearchConfig(k=4, w=32 if base else 4)
params = sum(p.numel() for p in model.module.parameters())
print(f"model {params / 1e6:.0f}M params, {dtype}, batch {batch}, prompt {prompt_len}, "
      f"gen {gen_length}, steps {steps}, block {block}, k={search.k}, w={search.w}")


def timed(name):
    decode = get_decoder(name)
    kwargs = dict(task=task, search=search)
    if name == "tts-mro":
        kwargs["reward"] = MultiReward(model, task, search, scorer=scorer)
    gen = torch.Generator(device=device).manual_seed(0)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = decode(model, prompts, None, cfg, generator=gen, **kwargs)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, sum(result.nfe) / len(result.nfe)


timed("vanilla")  # warm-up (kernels, allocator)
rows = {}
for name in ("vanilla", "tts-cbr", "tts-mro"):
    seconds, nfe = timed(name)
    rows[name] = {"seconds": round(seconds, 3), "nfe_per_row": nfe}
for name, row in rows.items():
    ratio = row["seconds"] / rows["vanilla"]["seconds"]
    print(f"{name:8s} {row['seconds']:8.2f} s  {ratio:5.2f}x vanilla  nfe/row {row['nfe_per_row']:.0f}")
out = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "size": size,
       "dtype": str(dtype), "torch": torch.__version__, "transformers": transformers.__version__,
       "model_parameters": params, "batch": batch, "prompt_length": prompt_len, "gen_length": gen_length,
       "steps": steps, "block_length": block, "k": search.k, "w": search.w, "timings": rows}
path = os.path.join(os.environ["RESULTS"], "gpu_smoke.json")
with open(path, "w") as f:
    json.dump(out, f, indent=2)
print("wrote", path)
EOF

echo "== 3. KV-cache decoding speed, native LLaDA and Dream ($SIZE)"
if [ "$SIZE" = base ]; then
  CACHE_ARGS=(--shape full --device "$DEVICE" --dtype bf16 --blocks 8 --batch 1,8)
else
  CACHE_ARGS=(--shape scaled --device "$DEVICE" --blocks 1 --batch 1 --models llada --reference-batch 0)
fi
timeout 500 "$PY" benchmarks/cache_speed.py "${CACHE_ARGS[@]}" --out "$RESULTS"
