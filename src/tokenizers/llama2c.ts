// llama2.c's tokenizer: the .bin vocabulary format and run.c's encode/decode, reproduced exactly so
// that llama2.c checkpoints (stories260K with tok512.bin, Llama 2 with tokenizer.bin) see the ids
// they were trained on. save() converts it to an equivalent Hugging Face tokenizer.json.
import { TokenizerFileError } from "../io/errors.ts";
import { readTokenizerFile, savedConfig, writeTokenizerFiles, type Tokenizer } from "./tokenizer.ts";

const UNK = 0;
const BOS = 1;
const EOS = 2;
/** Byte-fallback tokens <0x00>..<0xFF> sit right after the three special tokens. */
const FIRST_BYTE_TOKEN = 3;
const BYTE_TOKENS = 256;
/** llama2.c's export writes BOS/EOS as "\n<s>\n" / "\n</s>\n" so they stand out when printed; decode shows the sentencepiece names. */
const SPECIAL_NAMES = ["<unk>", "<s>", "</s>"];
/** run.c's starting best score: a merge whose token scores at or below this is never taken. */
const NO_MERGE_SCORE = -1e10;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

export interface Llama2cVocab {
  maxTokenLength: number;
  pieces: string[]; // sentencepiece pieces with "▁" already turned into " ", as llama2.c stores them
  scores: number[]; // float32 merge scores, higher merges first
}

/** Parses llama2.c's format: int32 max_token_length, then per token float32 score, int32 length, bytes. */
export function parseLlama2cVocab(bytes: Uint8Array, source: string): Llama2cVocab {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  const need = (n: number, what: string) => {
    if (offset + n > bytes.length) {
      throw new TokenizerFileError(
        `${source}: truncated llama2.c tokenizer: expected ${what} (${n} bytes) at offset ${offset}, ` +
          `but the file has ${bytes.length - offset} bytes left`,
      );
    }
  };
  need(4, "int32 max_token_length");
  const maxTokenLength = view.getInt32(0, true);
  offset = 4;
  if (maxTokenLength <= 0) throw new TokenizerFileError(`${source}: corrupt llama2.c tokenizer: max_token_length ${maxTokenLength} at offset 0`);

  const pieces: string[] = [];
  const scores: number[] = [];
  while (offset < bytes.length) {
    const i = pieces.length;
    need(4, `float32 score of token ${i}`);
    scores.push(view.getFloat32(offset, true));
    offset += 4;
    need(4, `int32 length of token ${i}`);
    const length = view.getInt32(offset, true);
    if (length < 0 || length > maxTokenLength) {
      throw new TokenizerFileError(
        `${source}: corrupt llama2.c tokenizer: token ${i} has length ${length} at offset ${offset}, ` +
          `expected 0..${maxTokenLength} (max_token_length)`,
      );
    }
    offset += 4;
    need(length, `the ${length} bytes of token ${i}`);
    pieces.push(utf8Decoder.decode(bytes.subarray(offset, offset + length)));
    offset += length;
  }

  if (pieces.length < FIRST_BYTE_TOKEN + BYTE_TOKENS) {
    throw new TokenizerFileError(`${source}: corrupt llama2.c tokenizer: ${pieces.length} tokens, expected at least 259 (3 special + 256 byte tokens)`);
  }
  // encode() relies on id = byte + 3; a vocabulary laid out differently would silently produce wrong ids.
  for (let b = 0; b < BYTE_TOKENS; b++) {
    const expected = `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
    if (pieces[FIRST_BYTE_TOKEN + b] !== expected) {
      throw new TokenizerFileError(`${source}: not a byte-fallback vocabulary: token ${FIRST_BYTE_TOKEN + b} is ${JSON.stringify(pieces[FIRST_BYTE_TOKEN + b])}, expected ${expected}`);
    }
  }
  return { maxTokenLength, pieces, scores };
}

export async function loadLlama2cTokenizer(path: string): Promise<Llama2cTokenizer> {
  return new Llama2cTokenizer(parseLlama2cVocab(await readTokenizerFile(path), path));
}

export class Llama2cTokenizer implements Tokenizer {
  readonly bosTokenId = BOS;
  readonly eosTokenId = EOS;
  readonly padTokenId = null;
  readonly chatTemplate = null;
  readonly modelMaxLength = null; // the context length lives in the checkpoint, not the tokenizer
  private readonly idOf = new Map<string, number>();

  constructor(readonly vocab: Llama2cVocab) {
    vocab.pieces.forEach((piece, id) => {
      // run.c binary-searches a sorted copy; with duplicates either id could win, so refuse them.
      if (this.idOf.has(piece)) throw new Error(`llama2.c tokenizer: piece ${JSON.stringify(piece)} appears twice (ids ${this.idOf.get(piece)} and ${id})`);
      this.idOf.set(piece, id);
    });
  }

  get vocabSize(): number {
    return this.vocab.pieces.length;
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const { pieces, scores } = this.vocab;
    const prefix = (options.addSpecialTokens ?? true) ? [BOS] : [];
    if (text === "") return prefix;

    // sentencepiece's dummy prefix: " " in front, so "Hello" at the start encodes like " Hello" mid-text.
    // The round trip through UTF-8 replaces lone surrogates with U+FFFD, the bytes run.c would see.
    const wellFormed = utf8Decoder.decode(utf8Encoder.encode(" " + text));
    const tokens: number[] = [];
    for (const codepoint of wellFormed) {
      const id = this.idOf.get(codepoint);
      if (id !== undefined) tokens.push(id);
      else for (const byte of utf8Encoder.encode(codepoint)) tokens.push(byte + FIRST_BYTE_TOKEN);
    }

    // Repeatedly merge the adjacent pair whose concatenation is the best-scoring vocab entry,
    // leftmost on ties. mergedId[i] caches the merge of tokens[i] and tokens[i + 1] (-1: none), so a
    // merge only recomputes its two neighbours instead of every pair.
    const mergeOf = (i: number) => this.idOf.get(pieces[tokens[i]] + pieces[tokens[i + 1]]) ?? -1;
    const mergedId = tokens.slice(1).map((_, i) => mergeOf(i));
    for (;;) {
      let best = -1;
      let bestScore = NO_MERGE_SCORE;
      for (let i = 0; i < mergedId.length; i++) {
        if (mergedId[i] !== -1 && scores[mergedId[i]] > bestScore) {
          bestScore = scores[mergedId[i]];
          best = i;
        }
      }
      if (best === -1) break;
      tokens[best] = mergedId[best];
      tokens.splice(best + 1, 1);
      mergedId.splice(best, 1);
      if (best > 0) mergedId[best - 1] = mergeOf(best - 1);
      if (best < tokens.length - 1) mergedId[best] = mergeOf(best);
    }
    return [...prefix, ...tokens];
  }

  /**
   * run.c's decode: byte tokens become raw bytes, and all bytes are UTF-8 decoded at the end so a
   * character split over several byte tokens comes out whole. run.c strips the leading space of the
   * token after BOS (it never prints BOS); when BOS is shown as "<s>" the space stays, as in Hugging
   * Face's decode ("<s> Once"). Ids that do not start with BOS keep their leading space, so a decoded
   * continuation can be appended to its prompt.
   */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const skipSpecial = options.skipSpecialTokens ?? false;
    const bytes: number[] = [];
    let previous = -1;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`llama2.c tokenizer: token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      if (id <= EOS) {
        if (!skipSpecial) bytes.push(...utf8Encoder.encode(SPECIAL_NAMES[id]));
      } else if (id < FIRST_BYTE_TOKEN + BYTE_TOKENS) {
        bytes.push(id - FIRST_BYTE_TOKEN);
      } else {
        let piece = this.vocab.pieces[id];
        if (previous === BOS && skipSpecial && piece.startsWith(" ")) piece = piece.slice(1);
        bytes.push(...utf8Encoder.encode(piece));
      }
      previous = id;
    }
    return utf8Decoder.decode(Uint8Array.from(bytes));
  }

  async save(dir: string): Promise<void> {
    const config = savedConfig(
      { add_bos_token: true, add_eos_token: false, clean_up_tokenization_spaces: false, unk_token: SPECIAL_NAMES[UNK] },
      this,
      "LlamaTokenizer",
      (id) => (id === null ? null : SPECIAL_NAMES[id]),
    );
    await writeTokenizerFiles(dir, llama2cToHfTokenizerJson(this.vocab), config);
  }
}

/**
 * The Hugging Face tokenizer.json equivalent to a llama2.c vocabulary, built the way transformers'
 * sentencepiece converter builds Llama's: a byte-fallback BPE over the same ids, whose merges are
 * every pair (a, b) with a + b in the vocabulary, ranked by the merged token's score (higher first),
 * which is the order llama2.c's encode merges in. Ties (llama2.c merges tied scores leftmost first)
 * are ranked by merged id, then left id: BPE merges one rank at a time, so ties cannot be exact.
 */
export function llama2cToHfTokenizerJson(vocab: Llama2cVocab): object {
  // Back from llama2.c's " " to sentencepiece's "▁", which is also what keeps merges' "a b" unambiguous.
  const pieces = vocab.pieces.map((piece, id) => (id <= EOS ? SPECIAL_NAMES[id] : piece.replaceAll(" ", "▁")));
  const idOf = new Map(pieces.map((piece, id) => [piece, id]));

  const merges: { left: number; right: number; merged: number }[] = [];
  pieces.forEach((piece, merged) => {
    if (merged < FIRST_BYTE_TOKEN + BYTE_TOKENS) return; // special and byte tokens are never merge results
    const codepoints = Array.from(piece);
    for (let k = 1; k < codepoints.length; k++) {
      const left = idOf.get(codepoints.slice(0, k).join(""));
      const right = idOf.get(codepoints.slice(k).join(""));
      if (left !== undefined && right !== undefined) merges.push({ left, right, merged });
    }
  });
  merges.sort((a, b) => vocab.scores[b.merged] - vocab.scores[a.merged] || a.merged - b.merged || a.left - b.left);

  const special = (id: number) => ({ id, content: SPECIAL_NAMES[id], single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [UNK, BOS, EOS].map(special),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [BOS], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: Object.fromEntries(pieces.map((piece, id) => [piece, id])),
      merges: merges.map((m) => `${pieces[m.left]} ${pieces[m.right]}`),
    },
  };
}
