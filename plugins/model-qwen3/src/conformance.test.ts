/**
 * Conformance of the onnxruntime engine (this architecture on the CPU backend) against the float64 reference and
 * the independent golden vectors: log-probabilities at every prompt position, greedy continuations, and KV-cache
 * decoding against full recomputation.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, KvCache, loadModel, modelArchitectures, ModelRunner, type LoadedModel } from '@qllm/core';
import { cpu } from '@qllm/backend-cpu';
import {
  argmax, GOLDEN_NAMES, goldenDir, loadRefWeights, logSoftmaxRows, makeTinyQwen3, Qwen3Reference,
  readGoldenExpected, refConfigFromHf, type TinyQwen3Options,
} from '@qllm/testing';
import { qwen3 } from './qwen3-model.js';

modelArchitectures.register('Qwen3ForCausalLM', qwen3, { override: true });
backends.register('cpu', cpu, { override: true });

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const top2Gap = (x: ArrayLike<number>) => {
  const a = argmax(x);
  let b = -Infinity;
  for (let i = 0; i < x.length; i++) if (i !== a) b = Math.max(b, x[i]!);
  return x[a]! - b;
};

const SHAPES: Array<{ name: string; options: TinyQwen3Options }> = [
  { name: 'head_dim·heads ≠ hidden, GQA 2, tied, real vocab', options: { hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 160, numLayers: 2, seed: 11 } },
  { name: 'GQA 3, untied head, two bf16 shards', options: { hiddenSize: 48, numHeads: 6, numKvHeads: 2, headDim: 16, intermediateSize: 128, numLayers: 3, vocabSize: 4096, tieWordEmbeddings: false, shards: 2, tokenizer: false, seed: 12 } },
  { name: 'GQA 4, tied with lm_head.weight present, transformers-5 config', options: { hiddenSize: 96, numHeads: 8, numKvHeads: 2, headDim: 24, intermediateSize: 192, numLayers: 3, vocabSize: 8192, writeTiedLmHead: true, configStyle: 'transformers-5', tokenizer: false, seed: 13 } },
];

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-conformance-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe.each(SHAPES)('engine vs float64 reference: $name', ({ options }) => {
  let loaded: LoadedModel;
  let ref: Qwen3Reference;
  let runner: ModelRunner;
  let vocab: number;
  const prompt = Array.from({ length: 32 }, (_, i) => (i * 2654435761) % 4000);

  beforeAll(async () => {
    const dir = path.join(root, `m${options.seed}`);
    const { config } = await makeTinyQwen3(dir, options);
    ref = new Qwen3Reference(refConfigFromHf(config), await loadRefWeights(dir));
    loaded = await loadModel({ model: dir, threads: 2 });
    runner = new ModelRunner(loaded.session, loaded.config);
    vocab = loaded.config.vocabSize;
  });
  afterAll(async () => {
    await loaded?.session.dispose();
  });

  it('matches log-probabilities within 1e-3 at every position of a 32-token prompt', async () => {
    const expected = ref.forward(prompt);
    const got = logSoftmaxRows(await runner.forward(new KvCache(), prompt, prompt.map((_, i) => i)), vocab);
    for (let t = 0; t < prompt.length; t++) expect(maxAbsDiff(got[t]!, expected[t]!)).toBeLessThan(1e-3);
  });

  it('continues a prompt greedily for 24 tokens like the reference wherever its top-2 gap exceeds 1e-3', async () => {
    const { tokenIds, logprobs } = ref.greedy(prompt, 24);
    const cache = new KvCache();
    let logits = await runner.forward(cache, prompt, [prompt.length - 1]);
    let compared = 0;
    for (let s = 0; s < 24; s++) {
      if (top2Gap(logprobs[s]!) > 1e-3) {
        expect(argmax(logits)).toBe(tokenIds[s]);
        compared++;
      }
      logits = await runner.forward(cache, [tokenIds[s]!], [0]);
    }
    expect(compared).toBeGreaterThan(12);
    runner.free(cache);
  });

  it('decodes 64 steps with the KV cache exactly as full recomputation', async () => {
    const steps = Array.from({ length: 64 }, (_, i) => (i * 40503 + 7) % 4000);
    const cache = new KvCache();
    const incremental = [logSoftmaxRows(await runner.forward(cache, prompt, [prompt.length - 1]), vocab)[0]!];
    for (const token of steps.slice(0, -1)) incremental.push(logSoftmaxRows(await runner.forward(cache, [token], [0]), vocab)[0]!);
    runner.free(cache);
    const all = [...prompt, ...steps.slice(0, -1)];
    const rows = Array.from({ length: 64 }, (_, i) => prompt.length - 1 + i);
    const full = logSoftmaxRows(await runner.forward(new KvCache(), all, rows), vocab);
    for (let i = 0; i < 64; i++) expect(maxAbsDiff(incremental[i]!, full[i]!)).toBeLessThan(1e-3);
  });
});

describe('engine vs the golden vectors (independent float64 implementation)', () => {
  it.each(GOLDEN_NAMES)('%s: every listed position and greedy step within 1e-4', async (name) => {
    const loaded = await loadModel({ model: goldenDir(name), threads: 2 });
    const runner = new ModelRunner(loaded.session, loaded.config);
    const V = loaded.config.vocabSize;
    for (const ex of readGoldenExpected(name)) {
      const ids = ex.prompt_token_ids;
      const cache = new KvCache();
      const rows = logSoftmaxRows(await runner.forward(cache, ids, ids.map((_, i) => i)), V);
      ex.positions_top8.forEach((top, t) => {
        for (const [id, lp] of top) expect(Math.abs(rows[t]![id]! - lp)).toBeLessThan(1e-4);
      });
      let last = rows[ids.length - 1]!;
      for (const step of ex.greedy) {
        expect(argmax(last)).toBe(step.token_id);
        for (const [id, lp] of step.top5) expect(Math.abs(last[id]! - lp)).toBeLessThan(1e-4);
        last = logSoftmaxRows(await runner.forward(cache, [step.token_id], [0]), V)[0]!;
      }
      runner.free(cache);
    }
    await loaded.session.dispose();
  });
});
