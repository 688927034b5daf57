// Hugging Face tokenizers: a tokenizer.json (+ tokenizer_config.json), or GPT-2's older
// vocab.json + merges.txt pair, run by @huggingface/tokenizers (a pure-JS port of the Rust crate,
// checked against the golden Llama and GPT-2 encodings in hf.test.ts).
import { Tokenizer as HfCoreTokenizer } from "@huggingface/tokenizers";
import { TokenizerFileError } from "../io/errors.ts";
import {
  chatTemplateOf,
  readTokenizerFile,
  savedConfig,
  specialTokenContent,
  writeTokenizerFiles,
  type Tokenizer,
  type TokenizerConfig,
} from "./tokenizer.ts";

/** The model types @huggingface/tokenizers implements; anything else is refused up front. */
const SUPPORTED_MODELS = ["BPE", "Unigram", "WordPiece"];

export interface HfTokenizerJson {
  model: { type?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly chatTemplate: string | null;
  readonly modelMaxLength: number | null;
  private readonly core: HfCoreTokenizer;

  constructor(
    readonly json: HfTokenizerJson,
    readonly config: TokenizerConfig,
    private readonly defaultClass = "PreTrainedTokenizerFast",
  ) {
    const type = json.model?.type;
    if (typeof type !== "string" || !SUPPORTED_MODELS.includes(type)) {
      throw new Error(`unsupported tokenizer.json model type ${JSON.stringify(type)} (supported: ${SUPPORTED_MODELS.join(", ")})`);
    }
    // transformers used to default clean_up_tokenization_spaces to true, which turns " ." into "."
    // on decode and so breaks encode/decode round trips; a config that wants it must say so.
    this.core = new HfCoreTokenizer(json, { clean_up_tokenization_spaces: false, ...config });
    // Added tokens may sit past the model's vocab; the embedding must cover the largest id.
    let maxId = -1;
    for (const id of this.core.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const idOf = (field: TokenizerConfig["bos_token"]) => {
      const content = specialTokenContent(field);
      return content === null ? null : (this.core.token_to_id(content) ?? null);
    };
    this.bosTokenId = idOf(config.bos_token);
    this.eosTokenId = idOf(config.eos_token);
    this.padTokenId = idOf(config.pad_token);
    this.chatTemplate = chatTemplateOf(config);
    // transformers' "no limit" sentinel (1e30) is not a length anyone can use.
    const max = config.model_max_length;
    this.modelMaxLength = typeof max === "number" && max < 1e18 ? max : null;
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.core.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    // The library rejects an empty list and maps unknown ids to <unk>; an empty completion is
    // legitimate, an out-of-range id is a bug upstream.
    for (const id of ids) {
      if (this.core.id_to_token(id) === undefined) throw new Error(`tokenizer: token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    if (ids.length === 0) return "";
    return this.core.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  async save(dir: string): Promise<void> {
    const tokenString = (id: number | null) => (id === null ? null : (this.core.id_to_token(id) ?? null));
    await writeTokenizerFiles(dir, this.json, savedConfig(this.config, this, this.defaultClass, tokenString));
  }
}

/** Loads a tokenizer.json; configPath (tokenizer_config.json) supplies special tokens and the chat template. */
export async function loadHfTokenizer(jsonPath: string, configPath: string | null = null): Promise<HfTokenizer> {
  const json = parseJson<HfTokenizerJson>(await readTokenizerFile(jsonPath), jsonPath);
  const type = json.model?.type;
  if (typeof type !== "string" || !SUPPORTED_MODELS.includes(type)) {
    // A file with no model at all is most often GPT-2's vocab.json given alone.
    const hint = type === undefined ? "; a GPT-2 vocab.json is read with its merges.txt: give the directory that holds both" : "";
    throw new TokenizerFileError(`${jsonPath}: unsupported tokenizer.json model type ${JSON.stringify(type)} (supported: ${SUPPORTED_MODELS.join(", ")})${hint}`);
  }
  const config = configPath === null ? {} : parseJson<TokenizerConfig>(await readTokenizerFile(configPath), configPath);
  return new HfTokenizer(json, config);
}

/** Loads GPT-2's vocab.json + merges.txt, with <|endoftext|> as BOS and EOS (GPT-2 adds neither when encoding). */
export async function loadGpt2Tokenizer(vocabPath: string, mergesPath: string): Promise<HfTokenizer> {
  const vocab = parseJson<Record<string, number>>(await readTokenizerFile(vocabPath), vocabPath);
  const merges = (await readTokenizerFile(mergesPath))
    .toString("utf8")
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#version"));
  const endOfText = "<|endoftext|>";
  const config: TokenizerConfig = {
    bos_token: endOfText,
    eos_token: endOfText,
    unk_token: endOfText,
    model_max_length: 1024,
    clean_up_tokenization_spaces: false, // written out so transformers, whose default differs by version, agrees
  };
  return new HfTokenizer(gpt2TokenizerJson(vocab, merges), config, "GPT2Tokenizer");
}

/** GPT-2's tokenizer.json as the Hub ships it: byte-level BPE with GPT-2's regex pre-tokenizer. */
export function gpt2TokenizerJson(vocab: Record<string, number>, merges: string[]): HfTokenizerJson {
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const specials = Object.entries(vocab).filter(([token]) => token === "<|endoftext|>");
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

function parseJson<T>(bytes: Buffer, path: string): T {
  try {
    return JSON.parse(bytes.toString("utf8")) as T;
  } catch (err) {
    throw new TokenizerFileError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}
