/**
 * The model-level part of the backend conformance suite, through `LLM` rather than a backend session: for a backend
 * that has no session to hand out (a remote one: createRemoteEngine, e.g. 'ascend' driving a vLLM-compatible server),
 * and equally for any other. What it can see is what `LLM` returns, so each model-level check is asked through
 * generated tokens and their logprobs:
 *  - log-probabilities of the top k at every generated position within 1e-3 of the float64 reference, and greedy
 *    tokens equal to the reference's argmax;
 *  - KV-cache decoding equals recomputation: each decoded token's logprobs equal those of a fresh request whose prompt
 *    is everything before it (one prefill), within 1e-3;
 *  - batched equals alone: prompts of different lengths generated together equal each generated alone (tokens
 *    exactly, logprobs within 1e-4).
 * (The op-level check — fused ops equal plain ops — needs graphs, so it stays with runBackendConformance.)
 *
 *   runLlmConformance('ascend over HTTP', async () => ({ llm, dir, close }));
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SamplingParams, type LLM, type RequestOutput } from '@qllm/core';
import { loadRefWeights } from './load-weights.js';
import { Qwen3Reference } from './reference.js';
import { refConfigFromHf } from './ref-config.js';

export interface LlmConformanceSubject {
  /** The LLM under test, on a Qwen3 folder. */
  llm: LLM;
  /** That folder (the reference reads its weights). */
  dir: string;
  close?: () => Promise<void>;
}

const K = 5;
const STEPS = 8;
const tokens = (n: number, salt: number, vocab: number) => Array.from({ length: n }, (_, i) => (i * 2654435761 + salt * 40503) % Math.min(vocab, 4000));

function entries(out: RequestOutput): Array<Record<number, { logprob: number }>> {
  return out.outputs[0]!.logprobs ?? [];
}

export function runLlmConformance(name: string, setup: () => Promise<LlmConformanceSubject>): void {
  describe(`LLM conformance: ${name}`, () => {
    let subject: LlmConformanceSubject;
    let ref: Qwen3Reference;
    let vocab: number;
    const greedy = (maxTokens = STEPS) => new SamplingParams({ temperature: 0, maxTokens, logprobs: K, ignoreEos: true });

    beforeAll(async () => {
      subject = await setup();
      const config = JSON.parse(await readFile(path.join(subject.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      vocab = config.vocab_size as number;
      ref = new Qwen3Reference(refConfigFromHf(config), await loadRefWeights(subject.dir));
    });
    afterAll(async () => {
      await subject?.close?.();
    });

    it('greedy tokens are the reference argmax, top-k log-probabilities within 1e-3 of it at every generated position', async () => {
      const prompt = tokens(24, 1, vocab);
      const [out] = await subject.llm.generate([{ promptTokenIds: prompt }], greedy());
      const ids = out!.outputs[0]!.tokenIds;
      expect(ids).toHaveLength(STEPS);
      const rows = ref.forward([...prompt, ...ids.slice(0, -1)]);
      entries(out!).forEach((entry, i) => {
        const row = rows[prompt.length - 1 + i]!;
        let best = 0;
        for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
        expect(row[ids[i]!]!).toBeCloseTo(row[best]!, 3); // the chosen token is the argmax (up to a near-tie)
        expect(Object.keys(entry).length).toBeGreaterThanOrEqual(K);
        for (const [id, lp] of Object.entries(entry)) expect(Math.abs(lp.logprob - row[Number(id)]!)).toBeLessThan(1e-3);
      });
    });

    it('KV-cache decoding equals recomputation: each decoded token\'s logprobs = a fresh prefill of everything before it (1e-3)', async () => {
      const prompt = tokens(20, 2, vocab);
      const [out] = await subject.llm.generate([{ promptTokenIds: prompt }], greedy());
      const ids = out!.outputs[0]!.tokenIds;
      const decoded = entries(out!);
      const fresh = await subject.llm.generate(
        ids.map((_, i) => ({ promptTokenIds: [...prompt, ...ids.slice(0, i)] })),
        greedy(1),
      );
      fresh.forEach((f, i) => {
        expect(f.outputs[0]!.tokenIds[0]).toBe(ids[i]);
        const recomputed = entries(f)[0]!;
        for (const [id, lp] of Object.entries(decoded[i]!)) {
          if (recomputed[Number(id)]) expect(Math.abs(lp.logprob - recomputed[Number(id)]!.logprob)).toBeLessThan(1e-3);
        }
      });
    });

    it('prompts of different lengths generated together equal each generated alone (tokens exactly, logprobs within 1e-4)', async () => {
      const prompts = [tokens(5, 3, vocab), tokens(17, 4, vocab), tokens(40, 5, vocab)];
      const together = await subject.llm.generate(prompts.map((p) => ({ promptTokenIds: p })), greedy());
      for (const [i, p] of prompts.entries()) {
        const [alone] = await subject.llm.generate([{ promptTokenIds: p }], greedy());
        expect(together[i]!.outputs[0]!.tokenIds).toEqual(alone!.outputs[0]!.tokenIds);
        entries(alone!).forEach((entry, s) => {
          for (const [id, lp] of Object.entries(entry)) expect(Math.abs(lp.logprob - entries(together[i]!)[s]![Number(id)]!.logprob)).toBeLessThan(1e-4);
        });
      }
    });
  });
}
