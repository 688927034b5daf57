#!/usr/bin/env bash
# The RLHF loop on the stories task with people in it, simulated: a fresh feedback server (SQLite in
# OUT), an admin account for the loop and three labelers (examples/loop/labelers.mjs) who answer
# every item the loop posts through the server's HTTP API with noisy lexicon-score preferences, and
# `rlhf loop run examples/loop/config.yaml` for three rounds. The round table ends in
# OUT/rounds.jsonl (and on stdout), the last policy in OUT/policy. Run again on the same OUT, it
# resumes (`rlhf loop resume`): finished stages are skipped, labels are read back from the server.
#
#   bash examples/loop/run.sh [OUT [CONFIG]]     (CONFIG: another loop config, e.g. one with policy_trainer: ppo)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/loop}
CONFIG=${2:-examples/loop/config.yaml}
mkdir -p "$OUT"
rlhf() { node bin/rlhf.mjs "$@"; }

# The reward model's starting point (config.yaml's reward_model.model): the stories example's
# rt-polarity reward model, trained here (~5 minutes) unless it is there already.
[[ -f runs/stories/rm/model.safetensors ]] || bash examples/stories/run.sh runs/stories rm

DB="$OUT/feedback.sqlite"
TOKENS="$OUT/feedback-tokens"
if [[ ! -f "$TOKENS" ]]; then
  {
    echo "admin=$(rlhf feedback user add loop-admin --role admin --db "$DB")"
    for name in ana ben cy; do echo "$name=$(rlhf feedback user add "$name" --role labeler --db "$DB")"; done
  } > "$TOKENS.tmp"
  mv "$TOKENS.tmp" "$TOKENS"
fi
export RLHF_FEEDBACK_API_KEY=$(grep '^admin=' "$TOKENS" | cut -d= -f2-)

# On a free port (--port 0); the loop reads the address from RLHF_FEEDBACK_URL (config.yaml's labeler.url otherwise).
# node itself in the background (not the rlhf function's subshell), so that $! is the server.
node bin/rlhf.mjs feedback serve --db "$DB" --port 0 > "$OUT/feedback-server.out" 2> "$OUT/feedback-server.log" &
SERVER=$!
LABELERS=
trap 'kill $SERVER ${LABELERS} 2>/dev/null || true' EXIT
URL=
for _ in $(seq 150); do
  URL=$(sed -n 's/^feedback server listening on \(http:[^ ]*\).*/\1/p' "$OUT/feedback-server.out")
  [[ -n "$URL" ]] && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/feedback-server.log" >&2; exit 1; }
  sleep 0.2
done
[[ -n "$URL" ]] || { echo "run.sh: the feedback server did not start (see $OUT/feedback-server.log)" >&2; exit 1; }
export RLHF_FEEDBACK_URL=$URL
node examples/loop/labelers.mjs "$URL" $(grep -v '^admin=' "$TOKENS") 2> "$OUT/labelers.log" &
LABELERS=$!

if [[ -f "$OUT/loop/config.json" ]]; then
  rlhf loop resume "$OUT/loop"
else
  rlhf loop run "$CONFIG" --output "$OUT/loop"
fi
cp "$OUT/loop/rounds.jsonl" "$OUT/rounds.jsonl"
rm -rf "$OUT/policy" && cp -r "$OUT/loop/policy" "$OUT/policy"
