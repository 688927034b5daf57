#!/usr/bin/env bash
# Reward hacking on the stories task, and the monitors that catch it (docs/monitors.md).
# stories260K as policy and reference, the README's rt-polarity reward model (run.sh's rm stage;
# used as it is, only its reward_stats.json is added, in a copy), the training openings as prompts:
#   (stop)  PPO without a KL leash at twice the learning rate (kl_coef 0, lr 1e-4, 90 steps);
#   stop    that run with monitor_action stop (checkpoints every 2 steps): where it ends and
#           which checkpoint becomes DIR/policy;
#   hack    the same run past the stop, the monitors only warning: where else they fire, and what
#           the gold score does afterwards. It resumes stop's last checkpoint (resuming is exact, so
#           this is the run stop would have gone on to be) rather than redoing its steps;
#   calm    the README's PPO setting (kl_coef 0.05, lr 5e-5, 40 steps, as run.sh): what fires there.
# Every step's samples go to samples.jsonl, whose lexicon score (lexicon-reward.mjs, which no
# trainer sees) is the gold score; `node examples/stories/hacking.mjs DIR` prints it per step
# beside the RM score, KL, entropy and the monitors' events.
#   evals   the checkpoints of stop and hack evaluated as run.sh evaluates policies (rlhf eval on the
#           21 held-out openings, 4 samples each, against the reference; score-samples.mjs adds the
#           lexicon), with the LM loss on TinyStories text (--lm-data): OUT/checkpoint-evals.jsonl,
#           printed by `node examples/stories/hacking.mjs --evals OUT/checkpoint-evals.jsonl`.
#
#   bash examples/stories/hacking.sh [RM] [OUT] [RUN...]      (default: runs/stories/rm runs/hacking stop hack calm evals)
# About 15-20 minutes a run when the machine is idle (PPO ~10 s a step at batch 16).
set -euo pipefail
cd "$(dirname "$0")/../.."
RM=${1:-runs/stories/rm}
OUT=${2:-runs/hacking}
shift 2 || true
RUNS=${*:-stop hack calm evals}
MODEL=../shared/data/llama2c/stories260K.bin
mkdir -p "$OUT"
rlhf() { node bin/rlhf.mjs "$@"; }

# The reward model's scores of its own training data: the range the reward_ood monitor checks.
if [[ ! -f "$OUT/rm/reward_stats.json" ]]; then
  rm -rf "$OUT/rm" && mkdir -p "$OUT/rm"
  cp "$RM"/*.json "$RM"/*.safetensors "$OUT/rm/"
  rlhf rm stats --model "$OUT/rm" --data ../shared/data/rt-polarity
fi

ppo() {
  local name=$1; shift
  [[ -f "$OUT/$name/ppo_config.json" ]] && return 0
  rlhf ppo --policy "$MODEL" --reward "$OUT/rm" --prompts examples/stories/prompts-train.jsonl --output "$OUT/$name" \
    --batch_size 16 --response_length 48 --sample_steps 1 "$@" 2>&1 | tee "$OUT/$name.log"
}

for run in $RUNS; do
  case $run in
    stop) ppo stop --total_steps 90 --learning_rate 1e-4 --kl_coef 0 --save_steps 2 --monitor_action stop ;;
    hack)
      if ! compgen -G "$OUT/hack/checkpoint-*" > /dev/null; then
        rm -rf "$OUT/hack" && mkdir -p "$OUT/hack"
        cp -r "$OUT"/stop/checkpoint-* "$OUT"/stop/*.jsonl "$OUT/hack/"
      fi
      ppo hack --total_steps 90 --learning_rate 1e-4 --kl_coef 0 --save_steps 10 --monitor_action warn --resume ;;
    calm) ppo calm --total_steps 40 --learning_rate 5e-5 --kl_coef 0.05 --save_steps 20 ;;
    evals)
      # Plain-text TinyStories stories for the LM loss (the sample file's five, one record each).
      node -e 'const t = require("fs").readFileSync(process.argv[1], "utf8").split("<|endoftext|>").map((s) => s.trim()).filter(Boolean);
        require("fs").writeFileSync(process.argv[2], t.map((text) => JSON.stringify({ text })).join("\n") + "\n")' ../shared/data/tinystories/tinystories_sample.txt "$OUT/lm-data.jsonl"
      for ckpt in "$OUT"/stop/checkpoint-{4,8,12,16} "$OUT"/hack/checkpoint-{20,30,40,50,60,70,80,90}; do
        [[ -d $ckpt ]] || continue
        step=${ckpt##*-}
        grep -qF "{\"step\":$step," "$OUT/checkpoint-evals.jsonl" 2>/dev/null && continue
        json=$(rlhf eval --policy "$ckpt" --reference "$MODEL" --reward "$OUT/rm" --prompts examples/stories/prompts-eval.jsonl \
          --num-samples 4 --max-new-tokens 48 --temperature 0.7 --seed 1 --samples "$OUT/eval-$step.jsonl" --lm-data "$OUT/lm-data.jsonl" --json)
        echo "{\"step\":$step,\"eval\":$json,\"scores\":$(node examples/stories/score-samples.mjs "$OUT/eval-$step.jsonl")}" >> "$OUT/checkpoint-evals.jsonl"
      done ;;
    *) echo "unknown run $run (stop, hack, calm, evals)" >&2; exit 2 ;;
  esac
done
for run in $RUNS; do
  if [[ $run == evals ]]; then node examples/stories/hacking.mjs --evals "$OUT/checkpoint-evals.jsonl"; else node examples/stories/hacking.mjs "$OUT/$run"; fi
done
