#!/usr/bin/env bash
# RLHF on real material, end to end, with the rlhf CLI only: the pretrained stories260K model as
# policy and reference, a reward model trained on rt-polarity (positive sentences preferred), and
# story openings as prompts. Then PPO at several kl_coef values; DPO on pairs sampled from the
# reference and labelled by the reward model (beta, learning rate, epochs, how many pairs, best of
# how many, a second round on its own samples); GRPO's loss types; online DPO; KTO. Every policy is
# evaluated on held-out openings against the reference (RM reward, KL, win rate, and the independent
# lexicon score of lexicon-reward.mjs). Results go to OUT/results.jsonl, one line per evaluation;
# `node examples/stories/table.mjs OUT/results.jsonl` prints them as the README's and
# docs/stories-experiments.md's table.
#
#   bash examples/stories/run.sh [OUT] [STAGE...]
#
# Stages: rm ppo pairs dpo grpo online-dpo kto (the default: the README's table), the rest of
# docs/stories-experiments.md's measurements: dpo-sweep dpo-iter online-dpo-sweep kto-sweep,
# lora (the ppo-kl0.05 and dpo-40x-ep1 runs again with a LoRA adapter, --use_peft), ptx (two
# PPO runs again with PPO-ptx, for the alignment-tax column), and llama-cpp (the kl_coef 0.05 PPO run
# with its rollouts on llama.cpp, beside the same run on the built-in generator, both timed), and
# llama-cpp-q8_0 (that run again, llama.cpp sampling with q8_0 weights).
# About three hours for the default stages on 2 cores (PPO ~10 s a step when the machine is
# otherwise idle, GRPO and online DPO about twice that, sampling 1,720 pairs ~15 minutes, a DPO epoch
# over them ~2 minutes). Each stage reuses what earlier stages left in OUT: a finished training run
# or an evaluation already in results.jsonl is not run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/stories}
shift || true
STAGES=${*:-rm ppo pairs dpo grpo online-dpo kto}
DATA=../shared/data
MODEL=$DATA/llama2c/stories260K.bin
PROMPTS=examples/stories/prompts-train.jsonl
EVAL_PROMPTS=examples/stories/prompts-eval.jsonl
RESPONSE=48
# Real TinyStories text (five stories, 1,809 tokens) that no run trains on: each policy's LM loss on
# it against the reference's is the alignment tax.
LM_DATA=$DATA/tinystories/tinystories_sample.txt
mkdir -p "$OUT"
rlhf() { node bin/rlhf.mjs "$@"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

# One line of results: the method, its knob, rlhf eval's JSON on the held-out openings, and the same
# samples summarised by score-samples.mjs (standard errors over openings, the independent lexicon
# score). An evaluation already in results.jsonl is not run again.
evaluate() {
  local method=$1 knob=$2 policy=$3
  local samples="$OUT/eval-$method-$knob.jsonl" json scores
  tax "$method" "$knob" "$policy"
  grep -qF "{\"method\":\"$method\",\"knob\":\"$knob\"," "$OUT/results.jsonl" 2>/dev/null && return 0
  json=$(rlhf eval --policy "$policy" --reference "$MODEL" --reward "$OUT/rm" --prompts "$EVAL_PROMPTS" \
    --num-samples 4 --max-new-tokens $RESPONSE --temperature 0.7 --seed 1 --samples "$samples" --json)
  scores=$(node examples/stories/score-samples.mjs "$samples")
  echo "{\"method\":\"$method\",\"knob\":\"$knob\",\"eval\":$json,\"scores\":$scores}" | tee -a "$OUT/results.jsonl"
}

# The alignment tax of a policy: its LM loss on LM_DATA beside the reference's, in OUT/tax.jsonl
# (kept apart from results.jsonl so rows evaluated before it existed get it without a new sampling).
tax() {
  local method=$1 knob=$2 policy=$3 json
  grep -qF "{\"method\":\"$method\",\"knob\":\"$knob\"," "$OUT/tax.jsonl" 2>/dev/null && return 0
  json=$(rlhf eval --policy "$policy" --reference "$MODEL" --lm-data "$LM_DATA" --json)
  echo "{\"method\":\"$method\",\"knob\":\"$knob\",\"lm\":$json}" | tee -a "$OUT/tax.jsonl"
}

# A training run whose final model (or LoRA adapter) is already in DIR (or DIR/policy) is not run again.
trained() {
  local dir
  for dir in "$1" "$1/policy"; do
    [[ -f "$dir/model.safetensors" || -f "$dir/adapter_model.safetensors" ]] && return 0
  done
  return 1
}

if has rm; then
  # ~4-5 minutes: one epoch-ish over 90% of the pairs, the rest held out.
  if ! trained "$OUT/rm"; then
    rlhf rm train --model "$MODEL" --data $DATA/rt-polarity --output "$OUT/rm" --max_steps 200 \
      --per_device_train_batch_size 16 --learning_rate 5e-4 --warmup_steps 20 --max_length 128 \
      --eval_split_ratio 0.1 --logging_steps 25 --eval_steps 100 --save_steps 200
  fi
  rlhf rm eval --model "$OUT/rm" --data $DATA/rt-polarity --split eval --json | tee "$OUT/rm-eval.json"
fi

# PPO: 40 steps of 16 openings, one completion each (640 scored samples).
ppo() {
  local name=$1 knob=$2; shift 2
  trained "$OUT/$name" || rlhf ppo --policy "$MODEL" --reward "$OUT/rm" --prompts $PROMPTS --output "$OUT/$name" \
    --batch_size 16 --response_length $RESPONSE "$@"
  evaluate ppo "$knob" "$OUT/$name/policy"
}

if has ppo; then
  for kl in 0.02 0.05 0.2; do
    ppo "ppo-kl$kl" "kl_coef=$kl" --total_steps 40 --learning_rate 5e-5 --kl_coef $kl --save_steps 20
  done
  # Twice the learning rate and 60 steps: further along the frontier.
  ppo ppo-lr1e-4-kl0.05 "kl_coef=0.05,lr=1e-4" --total_steps 60 --learning_rate 1e-4 --kl_coef 0.05 --save_steps 30
fi

# Preference pairs sampled from the reference at the evaluation's temperature and length, best vs
# worst of K under the reward model. PASSES copies of the openings, each a fresh draw.
pairs() {
  local file=$1 passes=$2 k=$3 prompts=$4 seed=$5
  [[ -f "$OUT/$file" ]] && return 0
  for ((i = 0; i < passes; i++)); do cat "$prompts"; done > "$OUT/prompts-$file"
  rlhf pairs --policy "$MODEL" --reward "$OUT/rm" --prompts "$OUT/prompts-$file" --k $k \
    --max-new-tokens $RESPONSE --temperature 0.7 --seed $seed --output "$OUT/$file"
}

# A completion cut off at the 48th token is marked in the pairs file ("chosen_truncated" /
# "rejected_truncated"), and rlhf dpo and rlhf kto give it no EOS: nearly every completion here is
# cut off, and an EOS appended to each (TRL's readers append it to every completion) carried most
# of what DPO learned before the mark existed (docs/stories-experiments.md).
if has pairs || has dpo || has kto || has dpo-sweep || has kto-sweep || has lora; then
  pairs pairs.jsonl 6 4 $PROMPTS 0         # 258 pairs, best vs worst of 4 (the first 258 of pairs-40x)
  pairs pairs-40x.jsonl 40 4 $PROMPTS 0    # 1720 pairs
  pairs pairs-k8-20x.jsonl 20 8 $PROMPTS 0 # 860 pairs, best vs worst of 8: pairs-40x's number of samples
  pairs pairs-eval.jsonl 6 4 $EVAL_PROMPTS 1  # 126 pairs on the held-out openings: DPO's eval_ metrics
fi

# rlhf dpo on a pairs file (batches of 16 pairs, lr 1e-4, linear decay), then evaluated.
dpo() {
  local name=$1 knob=$2 data=$3; shift 3
  trained "$OUT/$name" || rlhf dpo --model "$MODEL" --data "$OUT/$data" --output "$OUT/$name" --learning_rate 1e-4 \
    --per_device_train_batch_size 16 --logging_steps 5 --save_steps 1000 "$@"
  evaluate dpo "$knob" "$OUT/$name"
}
HELD_OUT="--eval-data $OUT/pairs-eval.jsonl"

if has dpo; then
  # The README's earlier recipe (258 pairs, 3 epochs) at beta 0.3 and 1; then 1,720 pairs, plain
  # (likelihood displacement: the chosen log-probs fall and KL grows), with RPO's NLL term holding
  # them up (rpo_alpha 1), and at beta 0.3 over 3 epochs.
  for beta in 0.3 1; do
    dpo "dpo-beta$beta" "beta=$beta,pairs=258,ep=3" pairs.jsonl --beta $beta --num_train_epochs 3
  done
  dpo dpo-40x-ep1 "beta=0.1,pairs=1720,ep=1" pairs-40x.jsonl --beta 0.1 --num_train_epochs 1 $HELD_OUT --eval_steps 27
  dpo dpo-40x-ep1-rpo1 "beta=0.1,rpo_alpha=1,pairs=1720,ep=1" pairs-40x.jsonl --beta 0.1 --rpo_alpha 1 --num_train_epochs 1 $HELD_OUT --eval_steps 27
  dpo dpo-40x-ep3-beta0.3 "beta=0.3,pairs=1720,ep=3" pairs-40x.jsonl --beta 0.3 --num_train_epochs 3 $HELD_OUT --eval_steps 54
fi

if has dpo-sweep; then
  dpo dpo-beta0.1 "beta=0.1,pairs=258,ep=3" pairs.jsonl --beta 0.1 --num_train_epochs 3
  dpo dpo-40x-ep2 "beta=0.1,pairs=1720,ep=2" pairs-40x.jsonl --beta 0.1 --num_train_epochs 2 $HELD_OUT --eval_steps 27
  dpo dpo-40x-ep3 "beta=0.1,pairs=1720,ep=3" pairs-40x.jsonl --beta 0.1 --num_train_epochs 3 $HELD_OUT --eval_steps 54
  dpo dpo-40x-ep3-lr3e-5 "beta=0.1,lr=3e-5,pairs=1720,ep=3" pairs-40x.jsonl --beta 0.1 --num_train_epochs 3 --learning_rate 3e-5 $HELD_OUT --eval_steps 54
  dpo dpo-40x-ep2-rpo1 "beta=0.1,rpo_alpha=1,pairs=1720,ep=2" pairs-40x.jsonl --beta 0.1 --rpo_alpha 1 --num_train_epochs 2 $HELD_OUT --eval_steps 27
  # Sharper pairs: best vs worst of 8 on 860 openings (pairs-40x's number of samples), of 16 on 258.
  dpo dpo-k8-20x "beta=0.1,pairs=860of8,ep=2" pairs-k8-20x.jsonl --beta 0.1 --num_train_epochs 2 $HELD_OUT --eval_steps 27
  pairs pairs-k16.jsonl 6 16 $PROMPTS 0    # 258 pairs, best vs worst of 16
  dpo dpo-k16 "beta=0.1,pairs=258of16,ep=3" pairs-k16.jsonl --beta 0.1 --num_train_epochs 3 $HELD_OUT --eval_steps 16
  # What the mark is worth: the same 1,720 pairs with it removed, so every completion ends in EOS.
  [[ -f "$OUT/pairs-40x-eos.jsonl" ]] || sed -E 's/,"(chosen|rejected)_truncated":true//g' "$OUT/pairs-40x.jsonl" > "$OUT/pairs-40x-eos.jsonl"
  dpo dpo-40x-ep1-eos "beta=0.1,pairs=1720,ep=1,eos-on-every-completion" pairs-40x-eos.jsonl --beta 0.1 --num_train_epochs 1 $HELD_OUT --eval_steps 27
fi

# Iterated DPO: a second round on pairs sampled from the first round's policy (dpo-40x-ep1; its
# own frozen start is the round's reference), 20 passes over the openings (860 pairs).
if has dpo-iter; then
  if [[ ! -f "$OUT/pairs-iter2.jsonl" ]]; then
    for ((i = 0; i < 20; i++)); do cat $PROMPTS; done > "$OUT/prompts-pairs-iter2.jsonl"
    rlhf pairs --policy "$OUT/dpo-40x-ep1" --reward "$OUT/rm" --prompts "$OUT/prompts-pairs-iter2.jsonl" --k 4 \
      --max-new-tokens $RESPONSE --temperature 0.7 --seed 2 --output "$OUT/pairs-iter2.jsonl"
  fi
  trained "$OUT/dpo-iter2" || rlhf dpo --model "$OUT/dpo-40x-ep1" --data "$OUT/pairs-iter2.jsonl" --output "$OUT/dpo-iter2" --learning_rate 1e-4 \
    --per_device_train_batch_size 16 --logging_steps 5 --save_steps 1000 --beta 0.1 --num_train_epochs 1 $HELD_OUT --eval_steps 27
  evaluate dpo "iterated,round2,beta=0.1,pairs=860,ep=1" "$OUT/dpo-iter2"
fi

# GRPO: 40 steps of 8 openings × 4 completions (1280 scored samples). At 5e-5 (PPO's rate) with
# 4 × 4 GRPO hardly moved in 40 steps (KL 0.7). With one update per batch (num_iterations 1) every
# ratio is 1, and with every completion 48 tokens long the loss types' aggregations coincide; the
# second update of num_iterations 2 is where clipping, cispo's capped weight, sapo's gate and GSPO's
# sequence ratio act.
grpo() {
  local name=$1 knob=$2; shift 2
  trained "$OUT/$name" || rlhf grpo --policy "$MODEL" --reward "$OUT/rm" --prompts $PROMPTS --output "$OUT/$name" --total_steps 40 \
    --batch_size 8 --num_generations 4 --max_completion_length $RESPONSE --temperature 0.7 --learning_rate 2e-4 --beta 0.04 --save_steps 20 "$@"
  evaluate grpo "$knob" "$OUT/$name/policy"
}

if has grpo; then
  grpo grpo-lr2e-4 "loss_type=dapo"
  for loss in dapo cispo sapo; do
    grpo "grpo-$loss-mu2" "loss_type=$loss,num_iterations=2" --loss_type $loss --num_iterations 2
  done
  # GSPO's clip range for sequence-level ratios (Zheng et al. 2025).
  grpo grpo-gspo-mu2 "gspo,num_iterations=2" --loss_type grpo --importance_sampling_level sequence --epsilon 3e-4 --epsilon_high 4e-4 --num_iterations 2
fi

# Online DPO: steps of 16 openings, two fresh completions each, ranked by the RM, one DPO step
# against the frozen start. Its pairs carry EOS only where generation ended.
online_dpo() {
  local name=$1 knob=$2; shift 2
  trained "$OUT/$name" || rlhf online-dpo --policy "$MODEL" --reward "$OUT/rm" --prompts $PROMPTS --output "$OUT/$name" \
    --batch_size 16 --response_length $RESPONSE --temperature 0.7 --save_steps 20 "$@"
  evaluate online-dpo "$knob" "$OUT/$name/policy"
}

if has online-dpo; then
  # Three times PPO's 40 steps (1920 pairs, each seen once).
  online_dpo online-dpo-beta0.1-lr1e-4-120 "beta=0.1,lr=1e-4,steps=120" --total_steps 120 --beta 0.1 --learning_rate 1e-4
fi

if has online-dpo-sweep; then
  for lr in 5e-5 1e-4 2e-4; do
    online_dpo "online-dpo-beta0.1-lr$lr" "beta=0.1,lr=$lr" --total_steps 40 --beta 0.1 --learning_rate $lr
  done
fi

# KTO on the same 1720 pairs, unpaired (each pair one desirable and one undesirable completion),
# 32 completions a step as DPO's 16 pairs.
kto() {
  local name=$1 knob=$2 data=$3; shift 3
  trained "$OUT/$name" || rlhf kto --model "$MODEL" --data "$OUT/$data" --output "$OUT/$name" --learning_rate 1e-4 \
    --per_device_train_batch_size 32 --logging_steps 5 --save_steps 1000 "$@"
  evaluate kto "$knob" "$OUT/$name"
}

if has kto; then
  kto kto-40x "beta=0.1,pairs=1720,ep=1" pairs-40x.jsonl --beta 0.1 --num_train_epochs 1 $HELD_OUT --eval_steps 27
fi

if has kto-sweep; then
  # Which data for KTO, on the same 258 × 4 samples (seed 0, as pairs.jsonl): best and worst of
  # each 4 as a pair, or all 4 labelled by the sign of their RM score (label-by-sign.mjs).
  if [[ ! -f "$OUT/kto-sign.jsonl" ]]; then
    for ((i = 0; i < 6; i++)); do cat $PROMPTS; done > "$OUT/prompts-ranking.jsonl"
    rlhf pairs --policy "$MODEL" --reward "$OUT/rm" --prompts "$OUT/prompts-ranking.jsonl" --k 4 --format ranking \
      --max-new-tokens $RESPONSE --temperature 0.7 --seed 0 --output "$OUT/ranking.jsonl"
    node examples/stories/label-by-sign.mjs "$OUT/ranking.jsonl" > "$OUT/kto-sign.jsonl"
  fi
  kto kto-pairs258 "beta=0.1,pairs=258,ep=3" pairs.jsonl --beta 0.1 --num_train_epochs 3 $HELD_OUT --eval_steps 16
  kto kto-sign258 "beta=0.1,sign-labelled=258x4,ep=3" kto-sign.jsonl --beta 0.1 --num_train_epochs 3 $HELD_OUT --eval_steps 16
  # TRL's advice when desirable examples are fewer: desirable_weight · n_desirable / n_undesirable in
  # [1, 4/3] (rlhf kto prints the range for the data it reads).
  kto kto-sign258-dw2.5 "beta=0.1,sign-labelled=258x4,desirable_weight=2.5,ep=3" kto-sign.jsonl --beta 0.1 --num_train_epochs 3 --desirable_weight 2.5 $HELD_OUT --eval_steps 16
fi

# LoRA: the full ppo-kl0.05 and dpo-40x-ep1 runs again, training an adapter on the frozen model
# (the reference is the model with the adapter off; PPO's value model is a second adapter with a
# fresh head on the same weights, where the full run's starts from the reward model). Every linear
# projection is adapted: "LoRA Without Regret" (Schulman et al. 2025) finds attention-only LoRA
# behind full fine-tuning and all-linear LoRA level with it. Rank 8 of stories260K's width 64 is a
# real low-rank restriction (rank 8 of 64 is 72 of SmolLM2-135M's 576) and still 46K trainable
# parameters, far more than 640 scored samples or 1,720 pairs can fill (the same paper: rank 1
# matches full fine-tuning in RL). lora_alpha stays TRL's 32. Two learning rates per method, no
# more: the paper's rule, about 10 times full fine-tuning's (5e-4 for PPO, 1e-3 for DPO), measured
# at widths of thousands; and 2 times (1e-4, 2e-4), for this width: PEFT starts A at U(±1/√in) and
# B at 0, so while A is near its start an Adam step of B moves W + (α/r)·B·A by about
# α/(√r·√(3·in)) of full fine-tuning's step: 0.8 here (in 64, r 8), 0.05 at in 4096, r 32, where
# the rule's 10x was found; and at 5e-4 LoRA PPO's training KL grew about 3 times as fast as the
# full run's (7.3 against 2.4 at step 10) with no more reward.
LORA="--use_peft --lora_r 8 --lora_alpha 32 --lora_target_modules all-linear"
if has lora; then
  for lr in 5e-4 1e-4; do
    ppo "ppo-lora-kl0.05-lr$lr" "lora,r=8,kl_coef=0.05,lr=$lr" --total_steps 40 --learning_rate $lr --kl_coef 0.05 --save_steps 20 $LORA
  done
  # TRL's LoRA PPO: the policy an adapter, the value model the whole reward model (trained whole),
  # as in the full runs, where it starts out predicting the score.
  for lr in 5e-4 2e-4; do
    ppo "ppo-lora-valuerm-kl0.05-lr$lr" "lora,r=8,value=rm,kl_coef=0.05,lr=$lr" --total_steps 40 --learning_rate $lr --kl_coef 0.05 --save_steps 20 \
      --value-model "$OUT/rm" $LORA
  done
  for lr in 1e-3 2e-4; do
    dpo "dpo-lora-40x-ep1-lr$lr" "lora,r=8,beta=0.1,lr=$lr,pairs=1720,ep=1" pairs-40x.jsonl --beta 0.1 --num_train_epochs 1 \
      --learning_rate $lr $HELD_OUT --eval_steps 27 $LORA
  done
fi

# Rollouts on llama.cpp (--rollout_engine llama.cpp): the kl_coef 0.05 run again, its samples drawn
# by llama.cpp from the policy re-exported each step (the losses recomputed on jax-js, truncated
# importance sampling on). Each run's wall time goes to OUT/wall.jsonl, beside a built-in run timed
# in the same stage (the earlier stages' runs were timed on other days' load).
timed_ppo() {
  local name=$1 knob=$2 t0; shift 2
  if ! trained "$OUT/$name"; then
    t0=$(date +%s.%N)
    ppo "$name" "$knob" "$@"
    node -e 'console.log(JSON.stringify({ run: process.argv[1], steps: 40, wall_s: Number((Date.now() / 1000 - Number(process.argv[2])).toFixed(1)) }))' "$name" "$t0" | tee -a "$OUT/wall.jsonl"
  fi
  evaluate ppo "$knob" "$OUT/$name/policy"
}
if has llama-cpp; then
  timed_ppo ppo-kl0.05-jaxjs-timed "kl_coef=0.05,rollouts=jax-js,timed" --total_steps 40 --learning_rate 5e-5 --kl_coef 0.05 --save_steps 20
  timed_ppo ppo-kl0.05-llamacpp "kl_coef=0.05,rollouts=llama.cpp" --total_steps 40 --learning_rate 5e-5 --kl_coef 0.05 --save_steps 20 --rollout_engine llama.cpp
fi
# The same run sampling with q8_0 weights (--rollout_dtype q8_0: FlashRL's quantized rollouts), the
# importance-sampling correction reconciling llama.cpp's probabilities with the trainer's.
if has llama-cpp-q8_0; then
  ppo ppo-kl0.05-llamacpp-q8_0 "kl_coef=0.05,rollouts=llama.cpp,rollout_dtype=q8_0" --total_steps 40 --learning_rate 5e-5 --kl_coef 0.05 --save_steps 20 --rollout_engine llama.cpp --rollout_dtype q8_0
fi

# PPO-ptx (InstructGPT): the kl_coef 0.05 runs again with the LM loss on the reference's own text
# mixed into every update (ptx_coef 1). That text is the 3,440 completions of pairs-40x.jsonl, the
# reference's samples on the training openings (a cut-off completion keeps no EOS): the closest this
# task has to the pretraining distribution, and none of it is LM_DATA.
if has ptx; then
  pairs pairs-40x.jsonl 40 4 $PROMPTS 0
  [[ -f "$OUT/ptx-data.jsonl" ]] || node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const out = lines.flatMap((p) => ["chosen", "rejected"].map((side) =>
      JSON.stringify({ prompt: p.prompt, completion: p[side], ...(p[`${side}_truncated`] ? { completion_truncated: true } : {}) })));
    require("fs").writeFileSync(process.argv[2] + ".tmp", out.join("\n") + "\n");
    require("fs").renameSync(process.argv[2] + ".tmp", process.argv[2]);' "$OUT/pairs-40x.jsonl" "$OUT/ptx-data.jsonl"
  ppo ppo-kl0.05-ptx "kl_coef=0.05,ptx_coef=1" --total_steps 40 --learning_rate 5e-5 --kl_coef 0.05 --save_steps 20 --ptx-data "$OUT/ptx-data.jsonl"
  ppo ppo-lr1e-4-kl0.05-ptx "kl_coef=0.05,lr=1e-4,ptx_coef=1" --total_steps 60 --learning_rate 1e-4 --kl_coef 0.05 --save_steps 30 --ptx-data "$OUT/ptx-data.jsonl"
fi
