#!/usr/bin/env bash
# GPU check of the trainers (mro train rl | rs) on a Hugging Face masked LM, under 5 minutes on one
# CUDA GPU: a BERT-base-shaped model (~110M parameters, random weights, built from a config: no
# downloads) saved to a folder, then
#   1. RL with the multi-reward (R_tv + R_q, SGRO potential), LoRA r=16, bf16, gradient
#      checkpointing, 20 updates of 8 problems x 4 rollouts, Countdown under the d1 protocol;
#   2. RS: TTS-MRO collection (keep=all) and transition fine-tuning with LoRA, 20 updates;
#   3. the saved adapters load back with --model and decode.
# Random weights: speeds and memory are real, accuracies are not. Prints rollouts/s and peak memory.
#
#   bash benchmarks/gpu_train_smoke.sh                        # CUDA
#   DEVICE=cpu SIZE=tiny bash benchmarks/gpu_train_smoke.sh   # a quick dry run on CPU
#
# Writes gpu_train_smoke.json to $OUT if set, else benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
export DEVICE=${DEVICE:-cuda} SIZE=${SIZE:-base} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RESULTS=${OUT:-benchmarks/results}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS"
DTYPE=$([ "$DEVICE" = cuda ] && echo bf16 || echo fp32)
# updates, problems per update and collected problems (a CPU dry run does a few of each)
if [ "$SIZE" = base ]; then U=20; P=8; N=32; else U=2; P=2; N=4; fi

"$PY" - "$WORK/bert" <<'PYEOF'
import os, sys
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

words = [str(i) for i in range(200)] + list("+-*/=(),.:<>") + "the answer is using numbers make target reasoning".split()
vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]",
                              cls_token="[CLS]", sep_token="[SEP]")
base = os.environ["SIZE"] == "base"
cfg = BertConfig(vocab_size=len(tok), hidden_size=768 if base else 64, num_hidden_layers=12 if base else 2,
                 num_attention_heads=12 if base else 2, intermediate_size=3072 if base else 128,
                 max_position_embeddings=512)
torch.manual_seed(0)
BertForMaskedLM(cfg).save_pretrained(sys.argv[1])
tok.save_pretrained(sys.argv[1])
PYEOF

COMMON="--model $WORK/bert --task countdown --task-options= --protocol d1 --gen-length 32 --block-length 32 \
  --device $DEVICE --dtype $DTYPE --lora-r 16 --lora-alpha 32 --lora-targets query,key,value,dense \
  --grad-checkpointing true --val-n $P --val-steps 16 --progress false"
start=$(date +%s)
echo "== 1. RL (LoRA, $DTYPE, $DEVICE)"
timeout 400 "$PY" -m mro train rl $COMMON --steps 16 --prompts $P --rollouts 4 --updates $U --val-every 10 \
  --rewards tv,q --w 4 --groups 2 --micro-batch 32 --lr 1e-4 --out "$WORK/rl"
echo "== 2. RS (TTS-MRO collection, transition fine-tuning)"
timeout 400 "$PY" -m mro train rs $COMMON --problems $N --collect-batch 16 --collect-steps 16 --k 2 --w 4 \
  --rewards tv,q --keep all --updates $U --batch-size 8 --val-every 10 --lr 1e-4 --out "$WORK/rs"
echo "== 3. adapters load back"
timeout 300 "$PY" -m mro eval --model "$WORK/rl/final" --task countdown --protocol d1 --gen-length 32 --steps 16 \
  --n $P --device $DEVICE --out "$WORK/eval" --progress false > /dev/null
end=$(date +%s)
"$PY" - "$WORK" "$RESULTS/gpu_train_smoke.json" "$((end - start))" <<'PYEOF'
import json, sys, statistics
from pathlib import Path
import torch
from mro.io import read_jsonl
work = Path(sys.argv[1])
log = read_jsonl(work / "rl" / "log.jsonl")
rates = [r["rollouts_per_s"] for r in log if r["kind"] == "train"]
out = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
       "torch": torch.__version__, "rl_rollouts_per_s_median": statistics.median(rates),
       "rl_updates": len(rates), "rs_log_lines": len(read_jsonl(work / "rs" / "log.jsonl")),
       "wall_s": int(sys.argv[3])}
Path(sys.argv[2]).write_text(json.dumps(out, indent=2))
print(json.dumps(out, indent=2))
PYEOF
