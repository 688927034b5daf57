// What the server's scheduler (src/serve/scheduler.ts) needs from a decoding engine: a cache of rows,
// each one independent sequence that comes and goes (continuous batching), read a prompt at a time
// and stepped a token at a time, giving the next token's logits so that the scheduler samples in JS
// (its own seeded streams, OpenAI's log-probs, stop strings). The built-in jax-js engine
// (row-batch.ts) and llama.cpp (llama-cpp-rows.ts) implement it.

/** A prompt to read, the free rows that take its cache (one per choice), and the tokens each may reach. */
export interface PromptRows {
  ids: number[];
  rows: number[];
  reach: number;
}

/**
 * A token the engine may draw itself, for a row whose choice reads nothing but the token (no
 * log-probs): greedily at temperature 0, else sampled with these settings from `seed`.
 */
export interface EngineDraw {
  temperature: number;
  topP: number;
  seed: number;
}

export interface DecodeRows {
  /** Rows now (free ones included). */
  readonly rows: number;
  /** Whether step() samples the rows it is given a sampled draw for (greedy draws any engine may take). */
  readonly samplesDraws: boolean;
  /**
   * Resizes to `from.length` rows, new row i taking old row from[i] (-1: an empty row). Growing,
   * shrinking and compacting are all this.
   */
  arrange(from: number[]): void;
  /** Empties row r; the next insert may reuse it. */
  clear(r: number): void;
  /** Reads each prompt into each of its (free) rows; returns each prompt's next-token logits [V]. */
  insert(prompts: PromptRows[]): Promise<Float32Array[]>;
  /**
   * Feeds tokens[r] to every row in `active` (the others are left as they are) and returns the
   * next-token logits of all rows, [rows × V] (a row not fed gives logits to ignore). For a row
   * given a draw an engine may draw the token itself and give only its logit (0), the others
   * -Infinity: the scheduler's sampler then can only pick that token.
   */
  step(tokens: Int32Array, active: readonly boolean[], draws?: readonly (EngineDraw | null)[]): Promise<Float32Array>;
  /** Frees the engine's memory; call it when no insert or step is in flight. */
  dispose(): void | Promise<void>;
}
