// Where a trained DPO policy keeps what it learned: over a pairs file read as `rlhf dpo` reads it,
// the mean log-odds h = (π_c − π_r) − (ref_c − ref_r) of the first N pairs, split into the appended
// EOS token's share and the rest of the completion's. A policy that separates pairs through the EOS
// after text that was only cut off (never sampled there) has learned something that changes no story.
//
//   node --import tsx examples/stories/margin-by-token.ts POLICY PAIRS.jsonl [N]
import { compile, fromHost, intsFromHost, release, toHost } from "../../src/engine/arrays.ts";
import { initEngine, type Array } from "../../src/engine/runtime.ts";
import { readDpoData } from "../../src/data/dpo-data.ts";
import { loadModel, resolveTokenizer } from "../../src/models/load.ts";
import { fullBatch, nextTokenLogprobs } from "../../src/models/forward.ts";
import type { Params } from "../../src/models/types.ts";

await initEngine();
const [policyPath, pairsPath, count] = process.argv.slice(2);
if (!policyPath || !pairsPath) throw new Error("usage: margin-by-token.ts POLICY PAIRS.jsonl [N]");
const reference = await loadModel(new URL("../../../shared/data/llama2c/stories260K.bin", import.meta.url).pathname);
const policy = await loadModel(policyPath);
const tokenizer = await resolveTokenizer(reference);
const pairs = readDpoData(pairsPath, tokenizer).slice(0, Number(count ?? 258));

type Row = { ids: Array; pos: Array; attn: Array };
const forward = compile((p: Params, x: Row) => nextTokenLogprobs(reference.arch, p, fullBatch(x.ids, x.pos, x.attn))); // [1, T-1]

/** log π(token t | tokens < t) of one unpadded row, for t ≥ 1. */
async function tokenLogps(params: Params, ids: number[]): Promise<Float32Array> {
  const x = { ids: intsFromHost(ids, [1, ids.length]), pos: intsFromHost(ids.map((_, i) => i), [1, ids.length]), attn: fromHost(ids.map(() => 1), [1, ids.length]) };
  const out = await toHost(forward(params, x));
  release(x);
  return out;
}

/** Σ log π − log π_ref over a completion's tokens: the final EOS's term and the others'. */
async function logRatio(prompt: number[], completion: number[]): Promise<{ eos: number; rest: number }> {
  const ids = [...prompt, ...completion];
  const [ours, theirs] = [await tokenLogps(policy.params, ids), await tokenLogps(reference.params, ids)];
  let [eos, rest] = [0, 0];
  for (let i = prompt.length - 1; i < ids.length - 1; i++) {
    const d = ours[i]! - theirs[i]!; // column i scores token i + 1
    if (i === ids.length - 2 && ids[i + 1] === tokenizer.eosTokenId) eos = d;
    else rest += d;
  }
  return { eos, rest };
}

let [h, fromEos, chosenEos, rejectedEos] = [0, 0, 0, 0];
for (const p of pairs) {
  const [c, r] = [await logRatio(p.prompt, p.chosen), await logRatio(p.prompt, p.rejected)];
  h += c.eos + c.rest - r.eos - r.rest;
  fromEos += c.eos - r.eos;
  chosenEos += c.eos;
  rejectedEos += r.eos;
}
const n = pairs.length;
console.log(JSON.stringify({ pairs: n, h: h / n, h_from_eos: fromEos / n, h_from_rest: (h - fromEos) / n, chosen_eos: chosenEos / n, rejected_eos: rejectedEos / n }));
forward.dispose();
