// A tokenizer as llama.cpp's GGUF metadata (the tokenizer.ggml.* keys convert_hf_to_gguf.py writes),
// chosen so llama.cpp tokenizes text as this project does:
// - llama2.c vocabularies and SentencePiece-style BPE tokenizer.json files ("▁" for spaces, byte
//   fallback) become tokenizer.ggml.model "llama": llama.cpp's SentencePiece tokenizer, which merges
//   the adjacent pair whose result scores highest. llama2.c's own scores are that rule already; a
//   tokenizer.json's merge list becomes scores -rank, so the earliest merge wins as in BPE.
// - byte-level BPE (GPT-2, Qwen2, SmolLM) becomes "gpt2" with its merges and the pre-tokenizer
//   (tokenizer.ggml.pre) whose split regex matches the tokenizer.json's.
// Rows of a model's embedding past the tokenizer's last id (Qwen2.5 pads 151,665 tokens to 151,936)
// get "[PAD<id>]" tokens of type unused, as convert_hf_to_gguf.py writes them.
import { InputError } from "../io/errors.ts";
import { gguf, type GgufValue } from "../io/gguf.ts";
import { HfTokenizer } from "./hf.ts";
import { Llama2cTokenizer } from "./llama2c.ts";
import { specialTokenContent, type Tokenizer } from "./tokenizer.ts";

/** llama.cpp's llama_token_type. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/;

/** The split regex of Qwen2's tokenizer.json pre-tokenizer (llama.cpp's "qwen2"). */
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface Vocab {
  model: "llama" | "gpt2";
  pre?: string;
  tokens: string[];
  types: number[];
  scores?: number[];
  merges?: string[];
  unkId: number | null;
}

/**
 * The tokenizer.ggml.* metadata for `tok`, its token list padded to the model's `vocabSize` rows.
 * `quiet`: no warning about text llama.cpp could not tokenize (the project's own exports hand
 * llama.cpp token ids, never text).
 */
export function ggufTokenizerMetadata(tok: Tokenizer, vocabSize: number, source: string, options: { quiet?: boolean } = {}): Map<string, GgufValue> {
  const vocab = tok instanceof Llama2cTokenizer ? llama2cVocab(tok) : hfVocab(tok, source, options.quiet ?? false);
  if (vocab.tokens.length > vocabSize) throw new InputError(`${source}: the tokenizer has ${vocab.tokens.length} tokens but the model only ${vocabSize} rows`);
  for (let id = vocab.tokens.length; id < vocabSize; id++) {
    vocab.tokens.push(`[PAD${id}]`);
    vocab.types.push(TOKEN_TYPE.unused);
    vocab.scores?.push(-1000);
  }
  const m = new Map<string, GgufValue>([["tokenizer.ggml.model", gguf.string(vocab.model)]]);
  if (vocab.pre) m.set("tokenizer.ggml.pre", gguf.string(vocab.pre));
  m.set("tokenizer.ggml.tokens", gguf.strings(vocab.tokens));
  if (vocab.scores) m.set("tokenizer.ggml.scores", gguf.f32s(vocab.scores));
  m.set("tokenizer.ggml.token_type", gguf.i32s(vocab.types));
  if (vocab.merges) m.set("tokenizer.ggml.merges", gguf.strings(vocab.merges));
  const ids: [string, number | null][] = [["bos", tok.bosTokenId], ["eos", tok.eosTokenId], ["unknown", vocab.unkId], ["padding", tok.padTokenId]];
  for (const [name, id] of ids) if (id !== null) m.set(`tokenizer.ggml.${name}_token_id`, gguf.u32(id));
  // What encode() does, observed rather than read from configs that may disagree with it.
  const plain = tok.encode("a", { addSpecialTokens: false });
  const withSpecials = tok.encode("a");
  m.set("tokenizer.ggml.add_bos_token", gguf.bool(tok.bosTokenId !== null && withSpecials.length > plain.length && withSpecials[0] === tok.bosTokenId));
  m.set("tokenizer.ggml.add_eos_token", gguf.bool(tok.eosTokenId !== null && withSpecials.length > plain.length && withSpecials.at(-1) === tok.eosTokenId));
  if (vocab.model === "llama") m.set("tokenizer.ggml.add_space_prefix", gguf.bool(true));
  if (tok.chatTemplate !== null) m.set("tokenizer.chat_template", gguf.string(tok.chatTemplate));
  return m;
}

/** llama2.c stores "▁" as " " and its special tokens decorated; llama.cpp wants SentencePiece's pieces. */
function llama2cVocab(tok: Llama2cTokenizer): Vocab {
  const special = ["<unk>", "<s>", "</s>"];
  const tokens = tok.vocab.pieces.map((p, id) => special[id] ?? (BYTE_TOKEN.test(p) ? p : p.replaceAll(" ", "▁")));
  const types = tokens.map((t, id) => (id === 0 ? TOKEN_TYPE.unknown : id < 3 ? TOKEN_TYPE.control : BYTE_TOKEN.test(t) ? TOKEN_TYPE.byte : TOKEN_TYPE.normal));
  return { model: "llama", tokens, types, scores: [...tok.vocab.scores], unkId: 0 };
}

interface HfModelJson {
  type?: string;
  vocab?: Record<string, number>;
  merges?: (string | [string, string])[];
  unk_token?: string | null;
  byte_fallback?: boolean;
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

function hfVocab(tok: Tokenizer, source: string, quiet: boolean): Vocab {
  if (!(tok instanceof HfTokenizer)) throw new InputError(`${source}: this tokenizer has no GGUF form here`);
  const model = tok.json.model as HfModelJson;
  if (model.type !== "BPE" || !model.vocab || !model.merges) throw new InputError(`${source}: a ${model.type} tokenizer.json has no llama.cpp form here (BPE only)`);
  const tokens: string[] = [];
  for (const [text, id] of Object.entries(model.vocab)) tokens[id] = text;
  const added = (tok.json.added_tokens ?? []) as AddedToken[];
  for (const a of added) tokens[a.id] = a.content;
  const missing = Array.from(tokens, (t, id) => (t === undefined ? id : -1)).find((id) => id >= 0);
  if (missing !== undefined) throw new InputError(`${source}: token id ${missing} has no token (ids must be contiguous)`);
  const merges = model.merges.map((m) => (typeof m === "string" ? m : m.join(" ")));
  const unkText = specialTokenContent(tok.config.unk_token ?? null) ?? model.unk_token ?? null;
  const unkId = unkText === null ? null : tokens.indexOf(unkText);
  const addedType = new Map(added.map((a) => [a.id, a.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined]));
  const typeOf = (t: string, id: number) => (id === unkId ? TOKEN_TYPE.unknown : (addedType.get(id) ?? (BYTE_TOKEN.test(t) ? TOKEN_TYPE.byte : TOKEN_TYPE.normal)));
  const types = tokens.map(typeOf);
  const unk = unkId === null || unkId < 0 ? null : unkId;
  if (isSentencePieceStyle(tok.json)) {
    // llama.cpp's SentencePiece tokenizer takes the best-scoring merge first: score -rank replays the merge list's order.
    const rank = new Map(merges.map((m, r) => [m.replace(" ", ""), r]));
    const scores = tokens.map((t) => -(rank.get(t) ?? 0));
    if (!quiet && !types.includes(TOKEN_TYPE.byte)) {
      // llama.cpp's SentencePiece tokenizer falls back to <0xXX> tokens and aborts without them.
      process.stderr.write(`${source}: the vocabulary has no byte tokens (<0x00>..<0xFF>): llama.cpp aborts on text with a character outside it; give it token ids from this project's tokenizer\n`);
    }
    return { model: "llama", tokens, types, scores, unkId: unk };
  }
  return { model: "gpt2", pre: byteLevelPre(tok.json.pre_tokenizer, source), tokens, types, merges, unkId: unk };
}

/** A tokenizer.json that writes spaces as "▁" (SentencePiece's convention), as Llama 2's and TinyStories' do. */
function isSentencePieceStyle(json: HfTokenizer["json"]): boolean {
  return JSON.stringify(json.normalizer ?? null).includes("▁") || JSON.stringify(json.pre_tokenizer ?? null).includes("Metaspace");
}

/** llama.cpp's name for a byte-level BPE pre-tokenizer, recognised by its split rules. */
function byteLevelPre(pre: unknown, source: string): string {
  const steps = ((pre as { type?: string })?.type === "Sequence" ? (pre as { pretokenizers: unknown[] }).pretokenizers : [pre]) as { type?: string; [k: string]: unknown }[];
  const kinds = steps.map((s) => s?.type).join(",");
  if (kinds === "ByteLevel" && steps[0]!.use_regex !== false) return "gpt-2";
  if (kinds === "Digits,ByteLevel" && steps[0]!.individual_digits === true) return "smollm";
  if (kinds === "Split,ByteLevel" && (steps[0]!.pattern as { Regex?: string })?.Regex === QWEN2_SPLIT) return "qwen2";
  throw new InputError(`${source}: pre_tokenizer ${JSON.stringify(pre).slice(0, 200)} matches none of llama.cpp's pre-tokenizers known here (GPT-2's, Qwen2's, SmolLM's)`);
}
