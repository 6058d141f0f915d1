import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOLDEN_NAMES, QWEN3_GOLDEN_DIR, goldenAvailable, goldenDir, readGoldenExpected } from './golden.js';
import { loadRefWeights } from './load-weights.js';
import { argmax, logSoftmax, topK } from './logprobs.js';
import { Qwen3Reference, matmulWT, refConfigFromHf } from './reference.js';
import type { LinearHook, RefWeights } from './reference.js';
import { makeTinyQwen3 } from './tiny-qwen3.js';

const TOL = 1e-4;

describe('refConfigFromHf', () => {
  const base = {
    hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    head_dim: 32, vocab_size: 2048, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: true,
  };
  it('reads the transformers 4.51 keys', () => {
    expect(refConfigFromHf(base)).toEqual({
      hiddenSize: 64, intermediateSize: 160, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 32, vocabSize: 2048,
      rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true,
    });
  });
  it('reads rope_parameters.rope_theta (transformers 5) and defaults head_dim to hidden/heads', () => {
    const { rope_theta: _, head_dim: __, ...rest } = base;
    const c = refConfigFromHf({ ...rest, rope_parameters: { rope_theta: 5e6, rope_type: 'default' } });
    expect(c.ropeTheta).toBe(5e6);
    expect(c.headDim).toBe(16);
  });
  it('rejects bad values with the key name', () => {
    expect(() => refConfigFromHf({ ...base, hidden_size: 0 })).toThrow(/hidden_size/);
    expect(() => refConfigFromHf({ ...base, num_key_value_heads: 3 })).toThrow(/num_key_value_heads/);
  });
});

describe('helpers', () => {
  it('logSoftmax normalises and topK orders with the lowest id first on ties', () => {
    const lp = logSoftmax(Float64Array.from([1, 3, 3, -2, 0.5]));
    expect(lp.reduce((s, x) => s + Math.exp(x), 0)).toBeCloseTo(1, 14);
    expect(topK(lp, 3).map(([id]) => id)).toEqual([1, 2, 0]);
    expect(argmax(lp)).toBe(1);
  });
});

describe('LinearHook', () => {
  let root: string;
  let config: ReturnType<typeof refConfigFromHf>;
  let weights: RefWeights;
  const ids = [5, 99, 300, 7, 42];
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'qllm-ref-hook-'));
    const tiny = await makeTinyQwen3(path.join(root, 'm'), { vocabSize: 512, tokenizer: false, tieWordEmbeddings: false });
    config = refConfigFromHf(tiny.config);
    weights = await loadRefWeights(tiny.dir);
  });
  afterAll(async () => { await rm(root, { recursive: true, force: true }); });
  const bits = (rows: Float64Array[]) => rows.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength).toString('hex'));

  it('sees every linear once per forward, in order, with the whole sequence as one [T, in] matrix', () => {
    const calls: string[] = [];
    const hook: LinearHook = (name, x, inF, outF, T) => {
      expect(x).toHaveLength(T * inF);
      calls.push(`${name} ${T}x${inF}->${outF}`);
      return undefined;
    };
    const plain = new Qwen3Reference(config, weights).forward(ids);
    expect(bits(new Qwen3Reference(config, weights, { linear: hook }).forward(ids))).toEqual(bits(plain));
    const { hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: hd, vocabSize: V } = config;
    const layer = (l: number) => [
      `self_attn.q_proj 5x${D}->${H * hd}`, `self_attn.k_proj 5x${D}->${K * hd}`, `self_attn.v_proj 5x${D}->${K * hd}`,
      `self_attn.o_proj 5x${H * hd}->${D}`, `mlp.gate_proj 5x${D}->${I}`, `mlp.up_proj 5x${D}->${I}`, `mlp.down_proj 5x${I}->${D}`,
    ].map((c) => `model.layers.${l}.${c}`);
    expect(calls).toEqual([...layer(0), ...layer(1), `lm_head 5x${D}->${V}`]);
    calls.length = 0;
    new Qwen3Reference(config, weights, { linear: hook }).greedy(ids, 1);
    expect(calls.at(-1)).toBe(`lm_head 1x${D}->${V}`); // greedy: lm_head of the last position only
  });

  it("uses the hook's output: its own float product changes nothing; zeroed o_proj/down_proj leave norm(embedding)", () => {
    const own: LinearHook = (name, x, inF, outF, T) =>
      matmulWT(weights(`${name}.weight`), x, inF, outF, T);
    const plain = new Qwen3Reference(config, weights).forward(ids);
    expect(bits(new Qwen3Reference(config, weights, { linear: own }).forward(ids))).toEqual(bits(plain));

    const zero: LinearHook = (name, _x, _in, outF, T) => (/o_proj|down_proj/.test(name) ? new Float64Array(T * outF) : undefined);
    const hs = new Qwen3Reference(config, weights, { linear: zero }).hiddenStates(ids);
    const D = config.hiddenSize;
    const norm = weights('model.norm.weight');
    ids.forEach((id, t) => {
      const e = weights('model.embed_tokens.weight').subarray(id * D, (id + 1) * D);
      const inv = 1 / Math.sqrt(e.reduce((s, v) => s + v * v, 0) / D + config.rmsNormEps);
      e.forEach((v, i) => expect(hs[t]![i]).toBeCloseTo(v * inv * norm[i]!, 12));
    });
  });

  it('rejects a hook result of the wrong size', () => {
    const bad: LinearHook = (name) => (name === 'lm_head' ? new Float64Array(3) : undefined);
    expect(() => new Qwen3Reference(config, weights, { linear: bad }).forward(ids)).toThrow(/lm_head: the linear hook returned 3 values/);
  });
});

describe(`golden vectors (${QWEN3_GOLDEN_DIR})`, () => {
  it('are shipped with @qllm/testing', () => expect(goldenAvailable()).toBe(true));
  for (const name of GOLDEN_NAMES) {
    describe(name, () => {
      let ref: Qwen3Reference;
      beforeAll(async () => {
        const config = refConfigFromHf(JSON.parse(readFileSync(path.join(goldenDir(name), 'config.json'), 'utf8')));
        ref = new Qwen3Reference(config, await loadRefWeights(goldenDir(name)));
      });
      const prompts = readGoldenExpected(name);
      prompts.forEach((prompt, p) => {
        it(`prompt ${p}: every position's top-8 log-probabilities within ${TOL}`, () => {
          const lp = ref.forward(prompt.prompt_token_ids);
          expect(lp).toHaveLength(prompt.positions_top8.length);
          let maxErr = 0;
          prompt.positions_top8.forEach((top8, t) => {
            expect(top8).toHaveLength(8);
            expect(topK(lp[t]!, 8).map(([id]) => id)).toEqual(top8.map(([id]) => id));
            for (const [id, want] of top8) maxErr = Math.max(maxErr, Math.abs(lp[t]![id]! - want));
          });
          expect(maxErr).toBeLessThan(TOL);
        });
        it(`prompt ${p}: greedy token ids and top-5 log-probabilities within ${TOL}`, () => {
          const { tokenIds, logprobs } = ref.greedy(prompt.prompt_token_ids, prompt.greedy.length);
          expect(tokenIds).toEqual(prompt.greedy.map((s) => s.token_id));
          let maxErr = 0;
          prompt.greedy.forEach((step, i) => {
            expect(topK(logprobs[i]!, 5).map(([id]) => id)).toEqual(step.top5.map(([id]) => id));
            for (const [id, want] of step.top5) maxErr = Math.max(maxErr, Math.abs(logprobs[i]![id]! - want));
          });
          expect(maxErr).toBeLessThan(TOL);
        });
      });
    });
  }
});
