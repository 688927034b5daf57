#!/usr/bin/env bash
# The overoptimization curve (Gao, Schulman & Hilton 2022) on a task with a gold reward the policy
# never sees. stories260K is the policy and the reference, the story openings of examples/stories
# the prompts (README, "The overoptimization curve", says why).
#   gold    a bag-of-words logistic regression on all 25,000 labelled IMDb train reviews
#           (gold.mjs; accuracy on the 25,000 test reviews in OUT/gold.json)
#   proxy   a reward model (`rlhf rm train` on stories260K) trained on 860 pairs of the reference's
#           completions of the training openings, labelled by the gold: the only reward the policy sees
#   bon     best-of-n against the proxy: 64 reference completions of each held-out opening, scored
#           by the proxy (`rlhf pairs --format ranking`); n = 1…64 is estimated from them
#   ppo     PPO against the proxy without a KL leash (kl_coef 0, lr 1e-4), 48 steps, a checkpoint every 6,
#           the monitors warning (events.jsonl)
#   stop    the same PPO run with --monitor_action stop: where it ends and which checkpoint it keeps
#           (runs are deterministic, so that checkpoint is ppo's of the same step)
#   evals   each checkpoint through `rlhf eval` on the held-out openings (proxy score and KL against
#           the reference; the gold scores the same samples in curve.ts)
#   curve   curve.ts: gold and proxy gains against √KL, Gao's fits, OUT/curve.json, OUT/overopt.svg,
#           and OUT/overopt.png through headless Chromium
#
#   bash examples/overopt/run.sh [OUT] [STAGE...]     (default: runs/overopt, all stages)
# Each stage reuses what is already in OUT. Times on the 2-core machine, shared: see the README.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/overopt}
shift || true
STAGES=${*:-gold proxy bon ppo stop evals curve}
MODEL=../shared/data/llama2c/stories260K.bin
TRAIN_PROMPTS=examples/stories/prompts-train.jsonl
EVAL_PROMPTS=examples/stories/prompts-eval.jsonl
SAMPLING="--max-new-tokens 48 --temperature 0.7"
export OVEROPT_GOLD=$OUT/gold.json
mkdir -p "$OUT"
rlhf() { node bin/rlhf.mjs "$@"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
timed() { local t0=$SECONDS; "$@"; echo "[$(date -u +%T)] $1 $2 $3 took $((SECONDS - t0)) s" >> "$OUT/times.log"; }

if has gold && [[ ! -f $OUT/gold.json ]]; then
  timed node examples/overopt/gold.mjs train "$OUT/gold.json"
fi

if has proxy; then
  if [[ ! -f $OUT/pairs-proxy.jsonl ]]; then
    for ((i = 0; i < 20; i++)); do cat $TRAIN_PROMPTS; done > "$OUT/prompts-proxy.jsonl"
    timed rlhf pairs --policy $MODEL --reward examples/overopt/gold.mjs --prompts "$OUT/prompts-proxy.jsonl" --k 2 \
      $SAMPLING --seed 0 --output "$OUT/pairs-proxy.jsonl"
  fi
  if [[ ! -f $OUT/proxy/model.safetensors ]]; then
    timed rlhf rm train --model $MODEL --data "$OUT/pairs-proxy.jsonl" --output "$OUT/proxy" --num_train_epochs 2 \
      --per_device_train_batch_size 16 --learning_rate 5e-4 --warmup_steps 10 --max_length 128 \
      --eval_split_ratio 0.1 --logging_steps 10 --eval_steps 50 --save_steps 1000
  fi
  [[ -f $OUT/proxy-eval.json ]] || rlhf rm eval --model "$OUT/proxy" --data "$OUT/pairs-proxy.jsonl" --split eval --json > "$OUT/proxy-eval.json"
fi

if has bon && [[ ! -f $OUT/bon.jsonl ]]; then
  timed rlhf pairs --policy $MODEL --reward "$OUT/proxy" --prompts $EVAL_PROMPTS --k 64 --format ranking \
    $SAMPLING --seed 1 --output "$OUT/bon.jsonl"
fi

ppo() {
  local name=$1 action=$2
  [[ -f $OUT/$name/ppo_config.json ]] && return 0
  timed rlhf ppo --policy $MODEL --reward "$OUT/proxy" --prompts $TRAIN_PROMPTS --output "$OUT/$name" \
    --batch_size 16 --response_length 48 --total_steps 48 --learning_rate 1e-4 --kl_coef 0 \
    --save_steps 6 --sample_steps 1 --monitor_action "$action"
}
if has ppo; then ppo ppo warn; fi
if has stop; then ppo ppo-stop stop; fi

if has evals; then
  for ckpt in "$OUT"/ppo/checkpoint-*; do
    [[ -d $ckpt ]] || continue
    step=${ckpt##*-}
    grep -qF "{\"step\":$step," "$OUT/ppo-evals.jsonl" 2>/dev/null && continue
    json=$(timed rlhf eval --policy "$ckpt" --reference $MODEL --reward "$OUT/proxy" --prompts $EVAL_PROMPTS \
      --num-samples 4 $SAMPLING --seed 1 --samples "$OUT/eval-$step.jsonl" --json)
    echo "{\"step\":$step,\"eval\":$json}" >> "$OUT/ppo-evals.jsonl"
  done
fi

if has curve; then
  node --import tsx examples/overopt/curve.ts "$OUT"
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=960,400 \
    --screenshot="$OUT/overopt.png" "file://$(realpath "$OUT/overopt.svg")" 2> /dev/null
  echo "wrote $OUT/overopt.png"
fi
