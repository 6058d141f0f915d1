/**
 * The real check of the GGUF export: llama.cpp (node-llama-cpp's prebuilt CPU build) runs the exported F16 file and
 * decodes greedily the tokens qllm decodes from the bf16 folder, wherever qllm's top-2 logprob gap is wide enough
 * that the two engines' rounding cannot swap them.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { LLM, SamplingParams, type QllmTokenizer } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';
import { exportGguf } from './export.js';

/** Steps where qllm's top-2 logprobs are closer than this may legitimately differ between engines. */
const MIN_GAP = 0.05;
const STEPS = 16;
/**
 * |llama.cpp − qllm| for the chosen token's logprob (measured: at most 0.007 on these models; llama.cpp rounds
 * activations to f16 for its F16 matmuls and keeps an f16 KV cache, qllm computes in f32).
 */
const LOGPROB_TOLERANCE = 0.03;
/**
 * Q8_0 weights (and llama.cpp's 8-bit activations for Q8_0 matmuls) move this random model's logits by up to ~0.25
 * nats: a sanity check of the Q8_0 layout (a wrong one gives unrelated tokens and logprobs off by nats), with a wider
 * gap and tolerance.
 */
const Q8_0_MIN_GAP = 0.5;
const Q8_0_LOGPROB_TOLERANCE = 0.5;
const PROMPTS: { text: string; special: boolean }[] = [
  { text: 'I am', special: false },
  { text: 'Today is', special: false },
  { text: 'The capital of France is', special: false },
  { text: 'def fib(n):\n    return', special: false },
  { text: '今天天气很好，我们去', special: false },
  { text: '<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n', special: true },
];

// node-llama-cpp's CPU binary is installed for linux-x64 only (pnpm-workspace.yaml keeps its other builds out).
const prebuilt = process.platform === 'linux' && process.arch === 'x64';
const unsupported = prebuilt ? '' : ' (skipped: node-llama-cpp is installed for linux-x64 only)';

let llama: Llama;
beforeAll(async () => {
  if (!prebuilt) return;
  // Never download or build: the prebuilt CPU binary or an error.
  llama = await getLlama({ build: 'never', gpu: false, skipDownload: true, usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 2 });
});
afterAll(async () => {
  await llama?.dispose();
});

interface Comparison {
  /** Steps compared (each prompt up to its first step whose qllm top-2 gap is within the threshold). */
  compared: number;
  /** Steps where both had decoded the same tokens so far (each prompt up to its first differing token). */
  agreed: number;
  /** Largest |llama.cpp − qllm| of the chosen token's logprob while both decoded the same tokens. */
  worstLogprob: number;
  report: string[];
}

/**
 * Greedy decoding of every prompt by both engines. Tokens must be equal up to the first step whose qllm top-2 gap is
 * at most `minGap`; while both decode the same tokens (the same context), the chosen token's logprobs must agree to
 * `tolerance`.
 */
async function compareGreedy(llm: LLM, tokenizer: QllmTokenizer, model: LlamaModel, minGap: number, tolerance: number): Promise<Comparison> {
  const context = await model.createContext({ contextSize: 128, threads: 1 }); // 2 threads spin-wait badly on a busy machine
  const sequence = context.getSequence();
  const result: Comparison = { compared: 0, agreed: 0, worstLogprob: 0, report: [] };
  try {
    for (const { text } of PROMPTS) {
      const ids = tokenizer.encode(text);
      const [out] = await llm.generate(
        [{ promptTokenIds: ids }],
        new SamplingParams({ temperature: 0, maxTokens: STEPS, logprobs: 2, ignoreEos: true }),
      );
      const ours = out!.outputs[0]!;
      const gaps = ours.logprobs!.map((entry) => {
        const [a, b] = Object.values(entry).map((l) => l.logprob).sort((x, y) => y - x);
        return a! - b!;
      });

      await sequence.clearHistory();
      const theirs: number[] = [];
      const theirLogprobs: number[] = [];
      // confidence: llama.cpp's probability of the token it picked (softmax of the raw logits).
      for await (const { token, confidence } of sequence.evaluateWithMetadata(ids as Token[], { confidence: true }, { temperature: 0 })) {
        theirs.push(token);
        theirLogprobs.push(Math.log(confidence));
        if (theirs.length === STEPS) break;
      }

      const close = gaps.findIndex((g) => g <= minGap);
      const upTo = close === -1 ? STEPS : close;
      const what = `${JSON.stringify(text)}: llama.cpp ${theirs.join(',')} vs qllm ${ours.tokenIds.join(',')} (qllm's gaps ${gaps.map((g) => g.toFixed(3))})`;
      expect(theirs.slice(0, upTo), what).toEqual(ours.tokenIds.slice(0, upTo));
      const diverged = theirs.findIndex((t, i) => t !== ours.tokenIds[i]);
      for (let i = 0; i < (diverged === -1 ? STEPS : diverged); i++) {
        const diff = Math.abs(theirLogprobs[i]! - ours.logprobs![i]![ours.tokenIds[i]!]!.logprob);
        expect(diff, `${what}: logprob at step ${i}`).toBeLessThan(tolerance);
        result.worstLogprob = Math.max(result.worstLogprob, diff);
      }
      result.compared += upTo;
      result.agreed += diverged === -1 ? STEPS : diverged;
      result.report.push(`  ${JSON.stringify(text)}: ${upTo}/${STEPS} steps compared, ${diverged === -1 ? 'all 16 tokens equal' : `tokens equal up to step ${diverged}`}`);
    }
  } finally {
    await context.dispose();
  }
  return result;
}

// A tied model (llama.cpp reuses token_embd as the head; random tied weights mostly repeat a token, with wide gaps)
// and an untied one (output.weight; varied tokens, narrower gaps). Both: head_dim · heads (128) ≠ hidden (64), and
// grouped-query attention (4 query heads, 2 KV heads).
describe.skipIf(!prebuilt).each([
  { tied: true, seed: 11 },
  { tied: false, seed: 11 },
])(`llama.cpp on exported files, tied head: $tied${unsupported}`, ({ tied, seed }) => {
  let root: string;
  let llm: LLM;
  let tokenizer: QllmTokenizer;
  const models: Partial<Record<'f16' | 'q8_0', LlamaModel>> = {};

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-gguf-llama-'));
    const dir = path.join(root, 'tiny');
    await makeTinyQwen3(dir, { seed, tieWordEmbeddings: tied, hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, numLayers: 2, intermediateSize: 160 });
    llm = await LLM.create({ model: dir, threads: 1, maxModelLen: 128, maxNumSeqs: 2 });
    tokenizer = (await llm.getTokenizer())!;
    for (const type of ['f16', 'q8_0'] as const) {
      const { output } = await exportGguf({ model: dir, output: path.join(root, `tiny-${type}.gguf`), type });
      models[type] = await llama.loadModel({ modelPath: output });
    }
  });
  afterAll(async () => {
    for (const m of Object.values(models)) await m.dispose();
    await llm?.close();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('tokenizes every prompt as qllm does, with the same special tokens', () => {
    const model = models.f16!;
    for (const { text, special } of PROMPTS) expect(model.tokenize(text, special), text).toEqual(tokenizer.encode(text));
    expect([model.tokens.bos, model.tokens.eos]).toEqual([151643, 151645]);
    expect(model.detokenize([151644, 151667, 40, 1079] as Token[], true)).toBe(tokenizer.decode([151644, 151667, 40, 1079]));
  });

  it("F16: decodes qllm's greedy tokens wherever qllm's top-2 gap exceeds 0.05, with the same logprobs", async () => {
    const { compared, worstLogprob, report } = await compareGreedy(llm, tokenizer, models.f16!, MIN_GAP, LOGPROB_TOLERANCE);
    console.log(`llama.cpp F16 vs qllm bf16 greedy (tied head: ${tied}): ${compared}/${PROMPTS.length * STEPS} steps compared, ` +
      `chosen-token logprobs within ${worstLogprob.toFixed(4)}\n${report.join('\n')}`);
    // The comparison must cover a good part of the steps, or the test would pass vacuously.
    expect(compared).toBeGreaterThanOrEqual((PROMPTS.length * STEPS) / 4);
  });

  it('Q8_0: loads and runs in llama.cpp, close to qllm where the gap is wide', async () => {
    const { compared, agreed, worstLogprob, report } = await compareGreedy(llm, tokenizer, models.q8_0!, Q8_0_MIN_GAP, Q8_0_LOGPROB_TOLERANCE);
    console.log(`llama.cpp Q8_0 vs qllm bf16 greedy (tied head: ${tied}): ${compared}/${PROMPTS.length * STEPS} steps compared, ` +
      `${agreed} with the same tokens so far, chosen-token logprobs within ${worstLogprob.toFixed(4)}\n${report.join('\n')}`);
    // Many steps decode the same tokens (80 and 59 of 96 here; a broken layout gives next to none), and on all of
    // those the logprobs are within the tolerance.
    expect(agreed).toBeGreaterThanOrEqual((PROMPTS.length * STEPS) / 4);
  });
});
