// Fresh weights follow the config: matrices N(0, initializer_range) (0.02 when config.json has
// none, as in transformers), norms at 1, and the same seed gives the same weights.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine } from "../engine/runtime.ts";
import { toHost } from "../engine/arrays.ts";
import { architectureFor } from "./architecture.ts";
import { parseConfig } from "./config.ts";
import { initParams } from "./params.ts";

const tiny = { model_type: "llama", vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4 };

async function std(values: Float32Array): Promise<number> {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
}

test("initializer_range sets the spread of fresh matrices (SmolLM2 says 0.0417); norms start at 1", async () => {
  await initEngine();
  for (const [range, expected] of [[undefined, 0.02], [0.0417, 0.0417]] as const) {
    const config = parseConfig({ ...tiny, ...(range !== undefined ? { initializer_range: range } : {}) }, "tiny");
    const params = initParams(architectureFor(config), 3);
    const embedding = await toHost(params["model.embed_tokens.weight"]!);
    assert.ok(Math.abs((await std(embedding)) - expected) < 0.02 * expected, `std for initializer_range ${range}`);
    assert.ok((await toHost(params["model.norm.weight"]!)).every((x) => x === 1));
  }
  const [a, b] = [initParams(architectureFor(parseConfig(tiny, "tiny")), 7), initParams(architectureFor(parseConfig(tiny, "tiny")), 7)];
  assert.deepEqual(await toHost(a["model.layers.0.mlp.up_proj.weight"]!), await toHost(b["model.layers.0.mlp.up_proj.weight"]!));
});
