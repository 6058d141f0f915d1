/**
 * `lmHead: 'int8'`: the runtime runs the weight-only int8 head it describes (per-row symmetric weights, per-token
 * activations, ties to even), and its distributions stay close to the float head's (the fidelity line for
 * BENCHMARKS.md, "Head options").
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, LLM, loadModel, ModelRunner, roundHalfEven, SamplingParams, type LoadedModel, type LmHeadOption } from 'qllm';
import { loadRefWeights, logSoftmax, makeTinyQwen3, Qwen3Reference, refConfigFromHf } from '@qllm/testing';

let root: string;
afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-head-'));
});

const fround = Math.fround;

/** The int8 head from its description, in float64. */
function int8Head(w: Float64Array, x: Float64Array, inF: number, outF: number, T: number): Float64Array {
  const scales = new Float64Array(outF);
  const q = new Float64Array(w.length);
  for (let n = 0; n < outF; n++) {
    let max = 0;
    for (let k = 0; k < inF; k++) max = Math.max(max, Math.abs(w[n * inF + k]!));
    const s = max / 127;
    scales[n] = fround(s);
    for (let k = 0; k < inF; k++) q[n * inF + k] = s > 0 ? Math.max(-127, Math.min(127, roundHalfEven(w[n * inF + k]! / s))) : 0;
  }
  const y = new Float64Array(T * outF);
  for (let t = 0; t < T; t++) {
    let max = 0;
    for (let k = 0; k < inF; k++) max = Math.max(max, Math.abs(x[t * inF + k]!));
    const st = Math.max(max / 127, 1e-30);
    const xq = Array.from({ length: inF }, (_, k) => roundHalfEven(x[t * inF + k]! / st));
    for (let n = 0; n < outF; n++) {
      let acc = 0;
      for (let k = 0; k < inF; k++) acc += xq[k]! * q[n * inF + k]!;
      y[t * outF + n] = st * scales[n]! * acc;
    }
  }
  return y;
}

async function logprobRows(model: string, lmHead: LmHeadOption, ids: number[]): Promise<Float64Array[]> {
  const loaded: LoadedModel = await loadModel({ model, lmHead, threads: 2, graphCache: false });
  try {
    const logits = await new ModelRunner(loaded.session, loaded.config).forward(new KvCache(), ids, ids.map((_, i) => i));
    const V = loaded.config.vocabSize;
    return ids.map((_, i) => logSoftmax(Float64Array.from(logits.subarray(i * V, (i + 1) * V))));
  } finally {
    await loaded.session.dispose();
  }
}

const ids = [3, 11, 1879, 0, 358, 1079, 264, 1273, 13, 576, 3974, 7876, 5835, 4208, 916, 279, 5678, 5562, 13, 8000];

describe.each([
  { tied: true, seed: 11 },
  { tied: false, seed: 12 },
])('lmHead int8 (tied $tied)', ({ tied, seed }) => {
  it('runs what it describes, and reports its fidelity to the float head', async () => {
    const dir = path.join(root, `m${seed}`);
    const { config } = await makeTinyQwen3(dir, { seed, tieWordEmbeddings: tied, numHeads: 4, numKvHeads: 2, headDim: 32, hiddenSize: 96, vocabSize: 8192 });
    const weights = await loadRefWeights(dir);
    const sim = new Qwen3Reference(refConfigFromHf(config), weights, {
      linear: (name, x, inF, outF, T) => (name === 'lm_head' ? int8Head(weights(tied ? 'model.embed_tokens.weight' : 'lm_head.weight'), x, inF, outF, T) : undefined),
    });
    const simRows = sim.forward(ids).map((row) => logSoftmax(row));
    const int8Rows = await logprobRows(dir, 'int8', ids);
    const floatRows = await logprobRows(dir, 'float', ids);

    let maxDiff = 0;
    let kl = 0;
    let top1 = 0;
    let clearFlips = 0; // disagreements where the float head's top-2 gap exceeds 0.05 nats
    const argmax = (r: Float64Array) => r.reduce((best, v, i) => (v > r[best]! ? i : best), 0);
    for (let t = 0; t < ids.length; t++) {
      const q = int8Rows[t]!;
      const p = floatRows[t]!;
      for (let v = 0; v < q.length; v++) {
        maxDiff = Math.max(maxDiff, Math.abs(q[v]! - simRows[t]![v]!));
        kl += Math.exp(p[v]!) * (p[v]! - q[v]!);
      }
      if (argmax(p) === argmax(q)) top1++;
      else if (p[argmax(p)]! - [...p].sort((a, b) => b - a)[1]! > 0.05) clearFlips++;
    }
    kl /= ids.length;
    console.log(`lmHead int8 (tied ${tied}): max |Δ logprob| vs its simulation ${maxDiff.toExponential(2)}; vs the float head: mean KL ${kl.toExponential(2)} nats, top-1 ${top1}/${ids.length}`);
    expect(maxDiff).toBeLessThan(1e-2);
    // Not the float head (the test would prove nothing if the option were ignored) ...
    expect(kl).toBeGreaterThan(0);
    expect(floatRows.some((r, t) => r.some((v, i) => Math.abs(v - int8Rows[t]![i]!) > 1e-4))).toBe(true);
    // ... but close to it.
    expect(kl).toBeLessThan(1e-2);
    expect(clearFlips).toBe(0);
  });
});

it('serves a prompt prefilled in chunks, where the head gets no rows in the chunks before the last', async () => {
  const dir = path.join(root, 'chunked');
  await makeTinyQwen3(dir, { seed: 13, numHeads: 4, numKvHeads: 2, headDim: 32, hiddenSize: 96, vocabSize: 8192 });
  const prompt = { promptTokenIds: Array.from({ length: 40 }, (_, i) => 5 + ((i * 7919) % 8000)) };
  const params = new SamplingParams({ temperature: 0, maxTokens: 6, ignoreEos: true });
  const run = async (maxNumBatchedTokens: number) => {
    const llm = await LLM.create({ model: dir, lmHead: 'int8', threads: 2, graphCache: false, maxNumBatchedTokens, maxNumSeqs: 2, maxModelLen: 64 });
    try {
      return (await llm.generate([prompt], params))[0]!.outputs[0]!.tokenIds;
    } finally {
      await llm.close();
    }
  };
  // 40 prompt tokens in chunks of 16: two chunks whose rows all stay in the cache, then the last with its logits row.
  expect(await run(16)).toEqual(await run(512));
});
