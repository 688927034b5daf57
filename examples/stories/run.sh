#!/usr/bin/env bash
# RLHF on real material, end to end, with the rlhf CLI only: the pretrained stories260K model as
# policy and reference, a reward model trained on rt-polarity (positive sentences preferred), and
# story openings as prompts. Then PPO at several kl_coef values, DPO at several beta values on pairs
# sampled from the reference and labelled by the reward model, and GRPO; every policy is evaluated
# on held-out openings against the reference (reward, KL, win rate). Results go to OUT/results.jsonl.
#
#   bash examples/stories/run.sh [OUT] [STAGE...]      stages: rm ppo pairs dpo grpo (default: all)
#
# About an hour on 2 cores (PPO ~10 s a step). Each stage reuses what earlier stages left in OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/stories}
shift || true
STAGES=${*:-rm ppo pairs dpo grpo}
DATA=../shared/data
MODEL=$DATA/llama2c/stories260K.bin
PROMPTS=examples/stories/prompts-train.jsonl
EVAL_PROMPTS=examples/stories/prompts-eval.jsonl
RESPONSE=48
mkdir -p "$OUT"
rlhf() { node bin/rlhf.mjs "$@"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

# One line of results: the method, its knob, and rlhf eval's JSON on the held-out openings.
evaluate() {
  local method=$1 knob=$2 policy=$3
  local json
  json=$(rlhf eval --policy "$policy" --reference "$MODEL" --reward "$OUT/rm" --prompts "$EVAL_PROMPTS" \
    --num-samples 4 --max-new-tokens $RESPONSE --temperature 0.7 --seed 1 --samples "$OUT/eval-$method-$knob.jsonl" --json)
  echo "{\"method\":\"$method\",\"knob\":\"$knob\",\"eval\":$json}" | tee -a "$OUT/results.jsonl"
}

if has rm; then
  # ~4-5 minutes: one epoch-ish over 90% of the pairs, the rest held out.
  rlhf rm train --model "$MODEL" --data $DATA/rt-polarity --output "$OUT/rm" --max_steps 200 \
    --per_device_train_batch_size 16 --learning_rate 5e-4 --warmup_steps 20 --max_length 128 \
    --eval_split_ratio 0.1 --logging_steps 25 --eval_steps 100 --save_steps 200
  rlhf rm eval --model "$OUT/rm" --data $DATA/rt-polarity --split eval --json | tee "$OUT/rm-eval.json"
fi

if has ppo; then
  for kl in 0.02 0.05 0.2; do
    rlhf ppo --policy "$MODEL" --reward "$OUT/rm" --prompts $PROMPTS --output "$OUT/ppo-kl$kl" \
      --total_steps 40 --batch_size 16 --response_length $RESPONSE --learning_rate 5e-5 --kl_coef $kl --save_steps 20
    evaluate ppo "kl_coef=$kl" "$OUT/ppo-kl$kl/policy"
  done
  # Twice the learning rate and 60 steps: further along the frontier.
  rlhf ppo --policy "$MODEL" --reward "$OUT/rm" --prompts $PROMPTS --output "$OUT/ppo-lr1e-4-kl0.05" \
    --total_steps 60 --batch_size 16 --response_length $RESPONSE --learning_rate 1e-4 --kl_coef 0.05 --save_steps 30
  evaluate ppo "kl_coef=0.05,lr=1e-4" "$OUT/ppo-lr1e-4-kl0.05/policy"
fi

if has pairs; then
  # Six passes over the training openings, each opening a new draw: ~250 pairs, best vs worst of 4.
  for i in 1 2 3 4 5 6; do cat $PROMPTS; done > "$OUT/pair-prompts.jsonl"
  rlhf pairs --policy "$MODEL" --reward "$OUT/rm" --prompts "$OUT/pair-prompts.jsonl" --k 4 \
    --max-new-tokens $RESPONSE --temperature 0.7 --seed 0 --output "$OUT/pairs.jsonl"
fi

if has dpo; then
  for beta in 0.1 0.3 1; do
    rlhf dpo --model "$MODEL" --data "$OUT/pairs.jsonl" --output "$OUT/dpo-beta$beta" --beta $beta \
      --learning_rate 1e-4 --num_train_epochs 3 --per_device_train_batch_size 16 --logging_steps 5 --save_steps 1000
    evaluate dpo "beta=$beta" "$OUT/dpo-beta$beta"
  done
fi

if has grpo; then
  # At 5e-5 (PPO's rate) with 4 prompts × 4 completions GRPO hardly moved in 40 steps (KL 0.7).
  rlhf grpo --policy "$MODEL" --reward "$OUT/rm" --prompts $PROMPTS --output "$OUT/grpo-lr2e-4" --total_steps 40 \
    --batch_size 8 --num_generations 4 --max_completion_length $RESPONSE --temperature 0.7 --learning_rate 2e-4 --beta 0.04 --save_steps 20
  evaluate grpo "beta=0.04,lr=2e-4" "$OUT/grpo-lr2e-4/policy"
fi
