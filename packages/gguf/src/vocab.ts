// The tokenizer as GGUF metadata, the way convert_hf_to_gguf.py writes a GPT-2-style byte-level BPE
// (TextModel._set_vocab_gpt2 with gguf-py's SpecialVocab): every id below config.json's vocab_size gets a token
// string and a type (ids the tokenizer lacks become `[PAD{id}]`, UNUSED), the merges, the special-token ids, the
// add-BOS/EOS flags and the chat template.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, readJsonFile, type QllmTokenizer } from '@qllm/core';
import { bool, i32s, str, strings, TokenType, u32, type GgufValue } from './format.js';

/** gguf-py's SpecialVocab token kinds, in its order. */
const SPECIAL_KINDS = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'] as const;
/** The GGUF key of each kind's id (`pad` is `padding_token_id`, as gguf-py names it). */
const SPECIAL_KEYS: Record<(typeof SPECIAL_KINDS)[number], string> = {
  bos: 'tokenizer.ggml.bos_token_id',
  eos: 'tokenizer.ggml.eos_token_id',
  unk: 'tokenizer.ggml.unknown_token_id',
  sep: 'tokenizer.ggml.seperator_token_id',
  pad: 'tokenizer.ggml.padding_token_id',
  cls: 'tokenizer.ggml.cls_token_id',
  mask: 'tokenizer.ggml.mask_token_id',
};

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
}

/** convert_hf_to_gguf.py's does_token_look_special: added tokens that should be CONTROL even if not marked special. */
function looksSpecial(token: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(token) ||
    (token.startsWith('<|') && token.endsWith('|>')) ||
    (token.startsWith('<｜') && token.endsWith('｜>')) ||
    (token.startsWith('<unused') && token.endsWith('>'))
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Qwen2/Qwen3's pre-tokenizer split: llama.cpp's 'qwen2' pre-tokenizer implements exactly this regex. */
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * tokenizer.ggml.pre: convert_hf_to_gguf.py recognizes a pre-tokenizer by hashing how it splits a test text; here the
 * one pre-tokenizer this export writes, Qwen2's, is recognized by its definition, and any other is an error (llama.cpp
 * would split text differently from the model's tokenizer).
 */
function preTokenizer(json: Record<string, unknown>, file: string): string {
  const pre = json.pre_tokenizer;
  const steps = isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [];
  const [split, byteLevel] = steps as unknown[];
  const ok =
    steps.length === 2 && isObject(split) && split.type === 'Split' && isObject(split.pattern) &&
    split.pattern.Regex === QWEN2_SPLIT && split.behavior === 'Isolated' && split.invert !== true &&
    isObject(byteLevel) && byteLevel.type === 'ByteLevel' && byteLevel.use_regex === false;
  if (!ok) throw new ConfigError(`${file}: the pre-tokenizer is not Qwen2/Qwen3's (a regex Split then ByteLevel), the one llama.cpp's 'qwen2' implements`);
  return 'qwen2';
}

/**
 * `tokenizer.ggml.*` and `tokenizer.chat_template` for Qwen2/Qwen3's byte-level BPE tokenizer. `vocabSize` is
 * config.json's vocab_size: the token list has exactly that many entries, one per embedding row.
 */
export async function tokenizerMetadata(
  dir: string,
  tokenizer: QllmTokenizer,
  config: Record<string, unknown>,
  vocabSize: number,
): Promise<[string, GgufValue][]> {
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  const json = await readJsonFile(tokenizerFile, 'tokenizer');
  const model = isObject(json.model) ? json.model : {};
  if (model.type !== 'BPE' || model.byte_fallback === true || !isObject(json.decoder) || json.decoder.type !== 'ByteLevel') {
    throw new ConfigError(`${tokenizerFile}: not a byte-level BPE tokenizer (GPT-2 style), which is what the GGUF export writes`);
  }
  if (tokenizer.vocabSize > vocabSize) {
    throw new ConfigError(`${tokenizerFile}: the tokenizer has ${tokenizer.vocabSize} tokens, more than config.json's vocab_size ${vocabSize}`);
  }

  const added = new Map<number, AddedToken>();
  for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
    if (!isObject(t) || !Number.isSafeInteger(t.id) || typeof t.content !== 'string') {
      throw new ConfigError(`${tokenizerFile}: an added_tokens entry lacks an integer 'id' or a string 'content'`);
    }
    added.set(t.id as number, { id: t.id as number, content: t.content, special: t.special === true, normalized: t.normalized === true });
  }

  const tokens = Array.from<string>({ length: vocabSize });
  const types = new Int32Array(vocabSize);
  for (let id = 0; id < vocabSize; id++) {
    let token = tokenizer.idToToken(id);
    if (token === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TokenType.UNUSED;
      continue;
    }
    const a = added.get(id);
    if (!a) {
      tokens[id] = token;
      types[id] = TokenType.NORMAL;
      continue;
    }
    // llama.cpp assumes CONTROL and USER_DEFINED tokens are pre-normalized: as the converter does, a non-normalized
    // added token is written as it encodes and decodes back.
    if (!a.normalized) token = tokenizer.decode(tokenizer.encode(token, { addSpecialTokens: false }));
    if (a.special || looksSpecial(token)) {
      types[id] = TokenType.CONTROL;
    } else {
      token = token.replaceAll('\u2581', ' ');
      types[id] = TokenType.USER_DEFINED;
    }
    tokens[id] = token;
  }

  const kv: [string, GgufValue][] = [
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str(preTokenizer(json, tokenizerFile))],
    ['tokenizer.ggml.tokens', strings(tokens)],
    ['tokenizer.ggml.token_type', i32s(types)],
    ['tokenizer.ggml.merges', strings(merges(model.merges, tokenizerFile))],
  ];

  const tokenizerConfigFile = path.join(dir, 'tokenizer_config.json');
  const tokenizerConfig = existsSync(tokenizerConfigFile) ? await readJsonFile(tokenizerConfigFile, 'tokenizer config') : {};
  for (const [kind, id] of specialTokenIds(tokenizerConfig, config, [...added.values()])) kv.push([SPECIAL_KEYS[kind], u32(id)]);
  // gguf-py writes the add-flags it has keys for: bos, eos and sep.
  for (const kind of ['bos', 'eos', 'sep'] as const) {
    const flag = tokenizerConfig[`add_${kind}_token`];
    if (typeof flag === 'boolean') kv.push([`tokenizer.ggml.add_${kind}_token`, bool(flag)]);
  }
  if (tokenizer.chatTemplate !== undefined) kv.push(['tokenizer.chat_template', str(tokenizer.chatTemplate)]);
  return kv;
}

/** tokenizer.json's merges as GGUF stores them: "left right", a space inside a part written as U+0120. */
function merges(value: unknown, file: string): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError(`${file}: model.merges is missing or empty`);
  return value.map((m, i) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      return m.map((part: string) => part.replaceAll(' ', '\u0120')).join(' ');
    }
    throw new ConfigError(`${file}: model.merges[${i}] is neither "a b" nor ["a", "b"]`);
  });
}

/**
 * SpecialVocab's ids: first tokenizer_config.json's `{kind}_token` (looked up among the added tokens), then
 * config.json's `{kind}_token_id` for kinds still unset.
 */
function specialTokenIds(
  tokenizerConfig: Record<string, unknown>,
  config: Record<string, unknown>,
  added: AddedToken[],
): [(typeof SPECIAL_KINDS)[number], number][] {
  const ids = new Map<(typeof SPECIAL_KINDS)[number], number>();
  for (const kind of SPECIAL_KINDS) {
    const entry = tokenizerConfig[`${kind}_token`];
    const content = typeof entry === 'string' ? entry : isObject(entry) && typeof entry.content === 'string' ? entry.content : undefined;
    if (content === undefined) continue;
    const id = added.find((t) => t.content === content)?.id;
    if (id !== undefined) ids.set(kind, id);
  }
  for (const kind of SPECIAL_KINDS) {
    const id = config[`${kind}_token_id`];
    if (!ids.has(kind) && Number.isSafeInteger(id) && (id as number) >= 0) ids.set(kind, id as number);
  }
  return [...ids];
}
