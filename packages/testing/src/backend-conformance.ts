/**
 * A backend conformance suite any backend plugin can run in its own tests (vitest):
 *
 *   import { runBackendConformance } from '@qllm/testing/conformance';
 *   runBackendConformance(myBackend, { architecture: qwen3 });
 *
 * On generated tiny Qwen3 checkpoints it checks, for the backend as it is and with its fused ops switched off (the
 * plain-op fallback every graph can take):
 *  - op level: fused attention and norms equal the plain ops;
 *  - model level: log-probabilities within 1e-3 of the float64 reference at every prompt position; decoding with
 *    the KV cache equals recomputing from scratch; sequences decoded together in one batch equal each decoded alone.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends, KvCacheBuffers, loadModel, modelArchitectures, StepRunner,
  type BackendV1, type LoadedModel, type ModelArchitectureV1, type ModelConfigV1,
} from '@qllm/core';
import { logSoftmaxRows } from './logprobs.js';
import { loadRefWeights } from './load-weights.js';
import { Qwen3Reference } from './reference.js';
import { refConfigFromHf } from './ref-config.js';
import { makeTinyQwen3, type TinyQwen3Options } from './tiny-qwen3.js';

export interface BackendConformanceOptions {
  /** The Qwen3ForCausalLM architecture plugin to build graphs with (registered for the suite). */
  architecture: ModelArchitectureV1<ModelConfigV1>;
  threads?: number;
  /** Skip the variant with fused ops switched off (default: run it). */
  skipPlainOps?: boolean;
}

/** The backend with its com.microsoft fused ops hidden, so graphs take the plain ONNX ops. */
export function withoutFusedOps(backend: BackendV1): BackendV1 {
  return { ...backend, name: `${backend.name}-plain`, supportsOp: (domain, op) => domain !== 'com.microsoft' && backend.supportsOp(domain, op) };
}

const SHAPES: Array<{ name: string; options: TinyQwen3Options }> = [
  { name: 'GQA 2, head_dim 32 (heads·head_dim ≠ hidden), tied', options: { hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 160, numLayers: 2, vocabSize: 4096, tokenizer: false, seed: 31 } },
  { name: 'GQA 3, head_dim 16, untied, 3 layers', options: { hiddenSize: 48, numHeads: 6, numKvHeads: 2, headDim: 16, intermediateSize: 128, numLayers: 3, vocabSize: 4096, tieWordEmbeddings: false, tokenizer: false, seed: 32 } },
];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const tokens = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (i * 2654435761 + salt * 40503) % 4000);

export function runBackendConformance(backend: BackendV1, options: BackendConformanceOptions): void {
  const variants = options.skipPlainOps ? [backend] : [backend, withoutFusedOps(backend)];
  let root: string;
  beforeAll(async () => {
    modelArchitectures.register(options.architecture.name, options.architecture, { override: true });
    for (const b of variants) backends.register(b.name, b, { override: true });
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-backend-conformance-'));
  });
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  describe.each(SHAPES)(`backend '${backend.name}' conformance: $name`, ({ options: shape }) => {
    const loaded = new Map<string, LoadedModel>();
    let ref: Qwen3Reference;
    const prompt = tokens(32, 1);

    beforeAll(async () => {
      const dir = path.join(root, `m${shape.seed}`);
      const { config } = await makeTinyQwen3(dir, shape);
      ref = new Qwen3Reference(refConfigFromHf(config), await loadRefWeights(dir));
      for (const b of variants) loaded.set(b.name, await loadModel({ model: dir, backend: b.name, threads: options.threads ?? 2, maxModelLen: 256 }));
    });
    afterAll(async () => {
      for (const m of loaded.values()) await m.session.dispose();
    });

    const runner = (m: LoadedModel, slots: number) => new StepRunner(m.session, m.config, new KvCacheBuffers(m.session, m.config, { slots, maxLen: 256, dtype: 'float32' }));

    it.skipIf(options.skipPlainOps)('op level: fused attention and norms give the plain ops\' logits (within 1e-4)', async () => {
      const [fused, plain] = variants.map((b) => loaded.get(b.name)!);
      const rows = prompt.map((_, i) => i);
      const a = await runner(fused!, 1).prefill(0, prompt, 0, rows);
      const b = await runner(plain!, 1).prefill(0, prompt, 0, rows);
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    });

    describe.each(variants.map((b) => b.name))('model level on %s', (name) => {
      it('log-probabilities within 1e-3 of the float64 reference at every prompt position', async () => {
        const m = loaded.get(name)!;
        const expected = ref.forward(prompt);
        const got = logSoftmaxRows(await runner(m, 1).prefill(0, prompt, 0, prompt.map((_, i) => i)), m.config.vocabSize);
        for (let t = 0; t < prompt.length; t++) expect(maxAbsDiff(got[t]!, expected[t]!)).toBeLessThan(1e-3);
      });

      it('KV-cache decoding (a prompt in two chunks, then 24 single steps) equals recomputation within 1e-3', async () => {
        const m = loaded.get(name)!;
        const V = m.config.vocabSize;
        const steps = tokens(24, 2);
        const r = runner(m, 2);
        await r.prefill(1, prompt.slice(0, 20), 0, []);
        const incremental = [logSoftmaxRows(await r.prefill(1, prompt.slice(20), 20, [11]), V)[0]!];
        for (const [i, token] of steps.slice(0, -1).entries()) {
          incremental.push(logSoftmaxRows(await r.decode([{ slot: 1, token, past: prompt.length + i }]), V)[0]!);
        }
        const all = [...prompt, ...steps.slice(0, -1)];
        const full = logSoftmaxRows(await runner(m, 1).prefill(0, all, 0, steps.map((_, i) => prompt.length - 1 + i)), V);
        for (let i = 0; i < steps.length; i++) expect(maxAbsDiff(incremental[i]!, full[i]!)).toBeLessThan(1e-3);
      });

      it('sequences of different lengths decoded in one batch equal each decoded alone (within 1e-4)', async () => {
        const m = loaded.get(name)!;
        const V = m.config.vocabSize;
        const prompts = [tokens(5, 3), tokens(17, 4), tokens(40, 5)];
        const slots = [2, 0, 3]; // a hole at slot 1: it runs a throw-away row
        const steps = 8;
        const batched = runner(m, 4);
        for (const [i, p] of prompts.entries()) await batched.prefill(slots[i]!, p, 0, []);
        const together: Float32Array[][] = prompts.map(() => []);
        for (let s = 0; s < steps; s++) {
          const rows = prompts.map((p, i) => ({ slot: slots[i]!, token: (s * 7 + i * 13) % 4000, past: p.length + s }));
          const logits = await batched.decode(rows);
          rows.forEach((_, i) => together[i]!.push(logits.slice(i * V, (i + 1) * V)));
        }
        for (const [i, p] of prompts.entries()) {
          const solo = runner(m, 1);
          await solo.prefill(0, p, 0, []);
          for (let s = 0; s < steps; s++) {
            const alone = await solo.decode([{ slot: 0, token: (s * 7 + i * 13) % 4000, past: p.length + s }]);
            expect(maxAbsDiff(logSoftmaxRows(alone, V)[0]!, logSoftmaxRows(together[i]![s]!, V)[0]!)).toBeLessThan(1e-4);
          }
        }
      });
    });
  });
}

/** The model-level checks through `LLM`, for remote backends (no session) and any other: see llm-conformance.ts. */
export { runLlmConformance, type LlmConformanceSubject } from './llm-conformance.js';
