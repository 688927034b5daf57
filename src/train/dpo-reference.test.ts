// Our DPO against an independent implementation of TRL's (scripts/reference/dpo_reference.py, run
// here): stories260K as the frozen reference, a perturbed copy of it as the policy, and four real
// pairs read as `rlhf dpo` reads them (three from `rlhf pairs` on the stories task, whose openings
// differ in length, and one rt-polarity pair with an empty prompt, so rows are padded differently in
// each implementation: ours right-pads whole rows, TRL left-pads prompts, right-pads completions
// and flushes left). Compared: the reference's sequence log-probs (withReferenceLogps, in batches of
// two sorted by length, against TRL's concatenated forward), and for the policy the sigmoid loss,
// TRL's rewards/* and logps/* metrics, every parameter's gradient and their global norm (the
// grad_norm TRL logs), through the gradient the training step takes: over the batch whole, and with
// its chosen rows and rejected rows differentiated apart (TrainStepConfig.rowParts); and again with
// RPO's term (rpo_alpha: the chosen rows' mean token NLL added, nll_loss logged).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile, fromHost, release, toHost, toNumber } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { initEngine, type Array } from "../engine/runtime.ts";
import { readDpoData } from "../data/dpo-data.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { loadModel, resolveTokenizer, saveModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import { defaultDPOConfig, type DPOConfig } from "./dpo-config.ts";
import { dpoBatch, dpoLoss, withReferenceLogps, type DpoBatch } from "./dpo.ts";
import { normRelError } from "../models/test-helpers.ts";
import { hostParams } from "./test-helpers.ts";
import { lossAndGradients } from "./step.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("../../scripts/reference/dpo_reference.py", import.meta.url));

// Best against worst of four completions of the reference under the rt-polarity reward model
// (`rlhf pairs`, examples/stories/run.sh), and rt-polarity's first pair.
const PAIRS = [
  {
    prompt: "Once upon a time, there was a little boy named Tim. One day, he saw a big tree. He",
    chosen: " wanted to use it to play with the tree. Tim wanted to eat the tree and find his toy. He wanted to go fix the tree.\nT",
    rejected: " wanted to see who was angry. He decided to show his new tree. He said, \"Why don't you get m",
  },
  {
    prompt: "Once upon a time, there was a little bird named Tweet. One day, he went to the park. He",
    chosen: " saw a big dog and wanted to play with it. It was a long stone.\nTweety wanted to go to the park. He put on the rad",
    rejected: " saw a little boy named Max. Max was very scared. He wanted to watch the boat by the boat.\nMax asked Ma",
  },
  {
    prompt: "Once upon a time, there was a little girl named Lily. One day, she looked out of the window. She",
    chosen: " saw a big jar of blocks. She wanted to keep it safe. Suddenly, she saw a big blanket. \"It'",
    rejected: " saw a big tree in the park. She wanted to play with it, but it was too tall. One day, she saw a man with a shiny rock. The m",
  },
  {
    prompt: "",
    chosen: "the rock is destined to be the 21st century's new \" conan \" and that he's going to make a splash even greater than arnold schwarzenegger , jean-claud van damme or steven segal . ",
    rejected: "simplistic , silly and tedious . ",
  },
];

/** The reference's weights moved by 10% of each tensor's RMS in a seeded random direction. */
async function perturbed(params: Params, seed: number): Promise<Params> {
  const rng = new HostRng(seed);
  const out: Params = {};
  for (const [name, host] of Object.entries(await hostParams(params))) {
    const rms = Math.sqrt(host.reduce((a, x) => a + x * x, 0) / host.length);
    out[name] = fromHost(host.map((x) => x + 0.1 * rms * rng.normal()), params[name]!.shape);
  }
  return out;
}

interface TorchDpo {
  ref_chosen: number[];
  ref_rejected: number[];
  policy_chosen: number[];
  policy_rejected: number[];
  loss: number;
  metrics: Record<string, number>;
  grad_norm: number;
}

test("DPO matches TRL's (PyTorch): reference log-probs, sigmoid loss, rewards/* and logps/*, every gradient and grad_norm; with rpo_alpha too", async () => {
  await initEngine();
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  const tokenizer = await resolveTokenizer(model);
  const dir = await tempDir();
  writeFileSync(join(dir, "pairs.jsonl"), PAIRS.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const examples = readDpoData(join(dir, "pairs.jsonl"), tokenizer);
  assert.equal(new Set(examples.map((e) => e.prompt.length)).size, 4, "four prompt lengths");
  const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const config: DPOConfig = { ...defaultDPOConfig, beta: 0.1, per_device_eval_batch_size: 2 };

  const policy = await perturbed(model.params, 7);
  await saveModel(join(dir, "reference"), model.config, model.params);
  await saveModel(join(dir, "policy"), model.config, policy);
  /** TRL's numbers for these pairs under `rpo_alpha`. */
  const reference = async (rpoAlpha: number | null) => {
    writeFileSync(join(dir, "pairs.json"), JSON.stringify({ beta: config.beta, pad_id: padId, rpo_alpha: rpoAlpha, pairs: examples }));
    const r = spawnSync(PYTHON, [SCRIPT, dir], { encoding: "utf8", env: { ...process.env, OPENBLAS_NUM_THREADS: "2" } });
    assert.equal(r.status, 0, `${SCRIPT} failed (is python3-torch installed? run scripts/setup-test-deps.sh):\n${r.stderr}`);
    return {
      torch: JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as TorchDpo,
      torchGrads: (await readSafetensors(join(dir, "reference.safetensors"))).tensors,
    };
  };
  const { torch } = await reference(null);

  // Reference log-probs: sums of 30–60 token log-probs of about −1.5 each, so 1e-5 relative is float32 rounding.
  const pairs = await withReferenceLogps(model.arch, model.params, examples, config, padId);
  pairs.forEach((p, i) => {
    for (const [ours, theirs, which] of [[p.refChosen, torch.ref_chosen[i]!, "chosen"], [p.refRejected, torch.ref_rejected[i]!, "rejected"]] as const) {
      assert.ok(Math.abs(ours - theirs) < 1e-5 * Math.abs(theirs), `pair ${i} ${which}: reference log-prob ${ours} vs TRL's ${theirs}`);
    }
  });

  const { batch } = dpoBatch(pairs, model.arch.maxPositions, padId);
  let plainLoss = 0;
  for (const rpoAlpha of [null, 0.5]) {
    const { torch, torchGrads } = await reference(rpoAlpha);
    if (rpoAlpha === null) plainLoss = torch.loss;
    // RPO's term is large enough here to tell (the chosen rows' NLL is ~1.5 nats a token).
    else assert.ok(torch.loss - plainLoss > 0.5 && Object.keys(torch.metrics).includes("nll_loss"), JSON.stringify(torch));
    // The batch whole, and its chosen rows and rejected rows differentiated apart (TrainStepConfig.rowParts).
    for (const rowParts of [false, true]) {
      const what = `rpo_alpha ${rpoAlpha}${rowParts ? ", in row parts" : ""}: `;
      const vg = lossAndGradients(dpoLoss(model.arch, { ...config, rpo_alpha: rpoAlpha }), undefined, rowParts);
      const step = compile((p: Params, b: DpoBatch) => {
        const [[loss, metrics], grads] = vg(p, b);
        return { loss, metrics, grads };
      });
      const out = step(policy, batch);
      const loss = await toNumber(out.loss);
      assert.ok(Math.abs(loss - torch.loss) < 1e-5, `${what}loss ${loss} vs TRL's ${torch.loss}`);
      // The policy moved far enough from the reference for the metrics to say something.
      assert.ok(Math.abs(torch.metrics["rewards/margins"]!) > 0.05 && Math.abs(plainLoss - Math.LN2) > 0.01, JSON.stringify(torch));
      assert.deepEqual(Object.keys(out.metrics).sort(), Object.keys(torch.metrics).sort(), `${what}the metrics TRL logs`);
      for (const [name, theirs] of Object.entries(torch.metrics)) {
        const ours = await toNumber(out.metrics[name]!);
        const tolerance = name.startsWith("logps/") ? 1e-5 * Math.abs(theirs) : 1e-5;
        assert.ok(Math.abs(ours - theirs) < tolerance, `${what}${name}: ${ours} vs TRL's ${theirs}`);
      }
      let squares = 0;
      for (const [name, g] of Object.entries(out.grads) as [string, Array][]) {
        const ours = await toHost(g);
        squares += ours.reduce((a, x) => a + x * x, 0);
        const err = normRelError(ours, torchGrads.get(`grad.${name}`)!.data);
        assert.ok(err < 1e-4, `${what}${name}: gradient relative error ${err}`);
      }
      assert.ok(Math.abs(Math.sqrt(squares) - torch.grad_norm) < 1e-4 * torch.grad_norm, `${what}grad_norm ${Math.sqrt(squares)} vs TRL's ${torch.grad_norm}`);
      step.dispose();
    }
  }
  release([policy, batch, model.params]);
});
