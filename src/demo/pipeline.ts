// `rlhf demo`: the whole RLHF pipeline on the built-in synthetic task (synthetic.ts), offline, in a
// few minutes on two cores: pretrain a tiny Llama → SFT on demonstrations → sample comparisons and
// label them with simulated noisy labelers → train a reward model → PPO against it with a KL leash,
// and DPO on the same comparisons beside it → evaluate everything against the hidden gold reward.
import { initEngine } from "../engine/runtime.ts";
import { compile, fromHost, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { parseConfig, type ModelConfig } from "../models/config.ts";
import { architectureFor, type Architecture } from "../models/architecture.ts";
import { copyParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { Generator } from "../generation/generate.ts";
import { TrainStep } from "../train/step.ts";
import { lmBatchFromRows, lmLoss } from "../train/lm-loss.ts";
import { evaluatePreferences, rewardBatch, rewardLoss, rewardModelFromCausalLm, RewardScorer } from "../train/reward.ts";
import { dpoSigmoidLoss } from "../algorithms/dpo.ts";
import { maskedSum } from "../algorithms/sequence.ts";
import { pairExample, type PreferenceExample } from "../data/datasets.ts";
import { defaultPpoRunConfig } from "../rl/ppo-config.ts";
import { responseLogprobs } from "../rl/scoring.ts";
import { packSequences, toDevice, type DeviceSequences } from "../rl/sequences.ts";
import { PpoTrainer } from "../rl/ppo-trainer.ts";
import type { RewardSource } from "../rl/reward-source.ts";
import { BOS, EOS, goldReward, labelPair, letterTokenizer, PAD, SyntheticLanguage, VOCAB } from "./synthetic.ts";

const PROMPT_LEN = 4;
const RESPONSE_LEN = 8;

export interface DemoOptions {
  seed: number;
  /** Smaller stages (for tests): fewer steps and samples. */
  quick: boolean;
  log: (line: string) => void;
}

export interface PolicyReport {
  name: string;
  gold: number;
  kl: number;
  length: number;
}

export interface DemoReport {
  rmAccuracy: number;
  rmPairs: number;
  policies: PolicyReport[];
  seconds: Record<string, number>;
}

function tinyConfig(): ModelConfig {
  return parseConfig(
    {
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      vocab_size: VOCAB,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 32,
      tie_word_embeddings: true,
      bos_token_id: BOS,
      eos_token_id: EOS,
      pad_token_id: PAD,
    },
    "demo model",
  );
}

/** Causal-LM training on token rows with loss masks; returns the trained parameters. */
async function trainLm(arch: Architecture, params: Params, batches: () => { rows: number[][]; masks: number[][] }, steps: number, lr: number): Promise<{ params: Params; loss: number }> {
  const trainer = new TrainStep(lmLoss(arch), { adamw: { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 }, maxGradNorm: 1 });
  let state = trainer.init(params);
  let loss = NaN;
  const length = 1 + PROMPT_LEN + RESPONSE_LEN + 1;
  for (let step = 1; step <= steps; step++) {
    const { rows, masks } = batches();
    const batch = lmBatchFromRows(rows, masks, length, PAD);
    const out = await trainer.step(params, state, [batch], lr * Math.min(1, step / 10), step);
    release(batch);
    ({ params, state, loss } = out);
  }
  release(state);
  trainer.dispose();
  return { params, loss };
}

/** Sum of response log-probs per row under `params`: [B]. */
function sequenceLogprobFn(arch: Architecture) {
  return compile((params: Params, s: DeviceSequences) => maskedSum(responseLogprobs(arch, params, s, 1 + PROMPT_LEN, 1).logprobs, s.responseMask.ref, -1));
}

/** Gold reward, length and sequence KL to the reference of a policy's samples on held-out prompts. */
async function evaluatePolicy(name: string, arch: Architecture, policy: Params, reference: Params, prompts: number[][], seed: number): Promise<PolicyReport> {
  const gens = await new Generator(arch).generate(policy, prompts, { temperature: 1, maxNewTokens: RESPONSE_LEN + 2, seed, eosTokenIds: [EOS] });
  const responses = gens.map((g) => (g.completionIds.length ? g.completionIds : [EOS]));
  const packed = toDevice(packSequences(prompts, responses, RESPONSE_LEN + 2, 1 + PROMPT_LEN));
  const f = sequenceLogprobFn(arch);
  const [pol, ref] = [await toHost(f(policy, packed)), await toHost(f(reference, packed))];
  release(packed);
  const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
  return {
    name,
    gold: mean(gens.map((g) => goldReward(g.completionIds))),
    kl: mean(Array.from(pol, (p, i) => p - ref[i]!)),
    length: mean(gens.map((g) => g.completionIds.length)),
  };
}

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  await initEngine();
  const { seed, quick, log } = options;
  const seconds: Record<string, number> = {};
  const timed = async <T>(stage: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    log(`${stage}…`);
    const out = await fn();
    seconds[stage] = Math.round((performance.now() - t0) / 100) / 10;
    return out;
  };
  const lang = new SyntheticLanguage(seed);
  const rng = new HostRng(seed + 1);
  const config = tinyConfig();
  const arch = architectureFor(config);
  const scale = quick ? 0.25 : 1;
  const story = () => [BOS, ...lang.sample(PROMPT_LEN + RESPONSE_LEN, rng), EOS];

  // 1. Pretraining: next-token prediction on the synthetic language.
  const pretrained = await timed("pretrain", () =>
    trainLm(arch, initParams(arch, seed), () => {
      const rows = Array.from({ length: 32 }, story);
      return { rows, masks: rows.map((r) => r.map(() => 1)) };
    }, Math.round(300 * scale), 3e-3),
  );
  log(`  pretraining loss ${pretrained.loss.toFixed(3)}`);

  // 2. SFT: demonstrations in the prompt → response format, loss on the response and EOS only.
  const sft = await timed("sft", () =>
    trainLm(arch, pretrained.params, () => {
      const rows = Array.from({ length: 32 }, story);
      return { rows, masks: rows.map((r) => r.map((_, t) => (t > PROMPT_LEN ? 1 : 0))) };
    }, Math.round(100 * scale), 1e-3),
  );
  log(`  SFT completion loss ${sft.loss.toFixed(3)}`);
  const reference = sft.params;

  // 3. Comparisons: K samples per prompt from the SFT model, every pair labeled by a noisy simulated labeler.
  const prompt = () => [BOS, ...lang.sample(PROMPT_LEN, rng)];
  const nPrompts = Math.round(160 * scale);
  const { train, heldOut } = await timed("comparisons", async () => {
    const prompts = Array.from({ length: nPrompts }, prompt);
    const k = 4;
    const gens = await new Generator(arch).generate(reference, prompts.flatMap((p) => Array.from({ length: k }, () => p)), { temperature: 1, maxNewTokens: RESPONSE_LEN + 2, seed, eosTokenIds: [EOS] });
    const examples: { prompt: number[]; chosen: number[]; rejected: number[]; goldMargin: number }[] = [];
    prompts.forEach((p, i) => {
      const responses = gens.slice(i * k, (i + 1) * k).map((g) => [...g.completionIds, EOS]);
      for (let a = 0; a < k; a++) {
        for (let b = a + 1; b < k; b++) {
          const [ga, gb] = [goldReward(responses[a]!), goldReward(responses[b]!)];
          if (ga === gb) continue;
          const aWins = labelPair(ga, gb, rng) === "a";
          examples.push({ prompt: p, chosen: aWins ? responses[a]! : responses[b]!, rejected: aWins ? responses[b]! : responses[a]!, goldMargin: aWins ? ga - gb : gb - ga });
        }
      }
    });
    const cut = Math.floor(examples.length * 0.85);
    return { train: examples.slice(0, cut), heldOut: examples.slice(cut) };
  });
  log(`  ${train.length} labeled pairs for training, ${heldOut.length} held out`);

  // 4. Reward model: the SFT backbone with a scalar head, Bradley-Terry loss.
  const rm = await timed("reward model", async () => {
    const start = rewardModelFromCausalLm({ config, arch, params: copyParams(reference), path: "sft", format: "hf-dir" }, { seed, padTokenId: PAD });
    const trainer = new TrainStep(rewardLoss(start.arch, { center_rewards_coefficient: null }), { adamw: { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 }, maxGradNorm: 1 });
    let params = start.params;
    let state = trainer.init(params);
    const asExample = (e: (typeof train)[number]): PreferenceExample => pairExample([...e.prompt, ...e.chosen], [...e.prompt, ...e.rejected]);
    const steps = Math.round(200 * scale);
    for (let step = 1; step <= steps; step++) {
      const batch = Array.from({ length: 16 }, () => asExample(train[rng.int(train.length)]!));
      const { batch: device } = rewardBatch(batch, 32, PAD);
      const out = await trainer.step(params, state, [device], 1e-3, step);
      release(device);
      ({ params, state } = out);
    }
    release(state);
    trainer.dispose();
    const scorer = new RewardScorer(start.arch, PAD, 32);
    // Held-out pairs judged by the gold reward itself (no labeler noise): does the RM rank like the truth?
    const truth = heldOut.map((e) => pairExample([...e.prompt, ...e.chosen], [...e.prompt, ...e.rejected]));
    const accuracy = await evaluatePreferences(scorer, params, truth);
    return { ...start, params, scorer, accuracy };
  });
  log(`  reward model accuracy on held-out pairs ${rm.accuracy.accuracy.toFixed(3)} (n = ${rm.accuracy.n})`);

  // 5. PPO against the reward model, KL to the SFT model.
  const rmSource: RewardSource = {
    name: "demo rm",
    score: async (prompts, completions) => rm.scorer.score(rm.params, prompts.map((p, i) => [...letterTokenizer.encode(p), ...letterTokenizer.encode(completions[i]!, { addSpecialTokens: false }), EOS])),
    dispose: () => {},
  };
  const trainPrompts = Array.from({ length: 64 }, () => letterTokenizer.decode(prompt()));
  const ppoPolicy = await timed("ppo", async () => {
    const value = rewardModelFromCausalLm({ config: rm.config, arch: rm.arch, params: copyParams(rm.params), path: "rm", format: "hf-dir" }, { seed, padTokenId: PAD });
    const trainer = new PpoTrainer({
      config: { ...defaultPpoRunConfig, batch_size: 16, total_steps: Math.round(60 * scale), learning_rate: 3e-4, kl_coef: 0.05, response_length: RESPONSE_LEN + 2, temperature: 1, seed, ptx_coef: 0 },
      models: { arch, policy: copyParams(reference), reference, valueConfig: value.config, valueArch: value.arch, value: value.params },
      tokenizer: letterTokenizer,
      prompts: trainPrompts,
      reward: rmSource,
      eosIds: [EOS],
    });
    for (let s = 0; s < trainer.config.total_steps; s++) {
      const { metrics } = await trainer.step();
      if ((s + 1) % 10 === 0) log(`  ppo step ${s + 1}: rm score ${metrics["objective/scores"]!.toFixed(3)}, kl ${metrics["objective/kl"]!.toFixed(3)}`);
    }
    return trainer.policy;
  });

  // 6. DPO on the same labeled comparisons, reference = SFT.
  const dpoPolicy = await timed("dpo", async () => {
    const beta = 0.1;
    const logp = sequenceLogprobFn(arch);
    const pack = (rows: typeof train, which: "chosen" | "rejected") => toDevice(packSequences(rows.map((e) => e.prompt), rows.map((e) => e[which]), RESPONSE_LEN + 3, 1 + PROMPT_LEN));
    const lossFn = (params: Params, b: { chosen: DeviceSequences; rejected: DeviceSequences; refChosen: ReturnType<typeof fromHost>; refRejected: ReturnType<typeof fromHost> }) => {
      const seqLogp = (s: DeviceSequences) => maskedSum(responseLogprobs(arch, params, s, 1 + PROMPT_LEN, 1).logprobs, s.responseMask.ref, -1);
      return dpoSigmoidLoss({ policyChosen: seqLogp(b.chosen), policyRejected: seqLogp(b.rejected), refChosen: b.refChosen, refRejected: b.refRejected }, beta);
    };
    const trainer = new TrainStep(lossFn, { adamw: { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 }, maxGradNorm: 1 });
    let params = copyParams(reference);
    let state = trainer.init(params);
    const steps = Math.round(150 * scale);
    for (let step = 1; step <= steps; step++) {
      const rows = Array.from({ length: 16 }, () => train[rng.int(train.length)]!);
      const [c, r] = [pack(rows, "chosen"), pack(rows, "rejected")];
      const [refC, refR] = [await toHost(logp(reference, c)), await toHost(logp(reference, r))];
      const batch = { chosen: c, rejected: r, refChosen: fromHost(refC, [16]), refRejected: fromHost(refR, [16]) };
      const out = await trainer.step(params, state, [batch], 1e-3, step);
      release(batch);
      ({ params, state } = out);
    }
    release(state);
    trainer.dispose();
    return params;
  });

  // 7. Evaluation against the hidden gold reward on held-out prompts.
  const evalPrompts = Array.from({ length: quick ? 32 : 128 }, prompt);
  const policies = await timed("evaluate", async () => [
    await evaluatePolicy("reference (SFT)", arch, reference, reference, evalPrompts, seed + 7),
    await evaluatePolicy("PPO", arch, ppoPolicy, reference, evalPrompts, seed + 7),
    await evaluatePolicy("DPO", arch, dpoPolicy, reference, evalPrompts, seed + 7),
  ]);
  return { rmAccuracy: rm.accuracy.accuracy, rmPairs: rm.accuracy.n, policies, seconds };
}
