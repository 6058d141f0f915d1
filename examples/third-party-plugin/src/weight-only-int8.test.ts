/**
 * The third-party method end to end, through the same public registry and entry points a user has: quantize a tiny
 * Qwen3 (real tokenizer) with `quantize({ method })`, check the folder, serve it with `new LLM(...)`, and diff the
 * engine against a float64 reference that applies the very same dequantized weights.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Checkpoint, CheckpointError, ConfigError, KvCache, LLM, loadModel, ModelRunner, quantizationMethods, quantize, SamplingParams,
  toFloat32, writeSafetensors, type TensorEntry,
} from 'qllm';
import { argmax, loadRefWeights, logSoftmaxRows, makeTinyQwen3, Qwen3Reference, refConfigFromHf } from '@qllm/testing';
import { QUANT_METHOD, quantizeRowsRtn, WEIGHT_ONLY_INT8_RTN, weightOnlyInt8 } from './index.js';

quantizationMethods.register(WEIGHT_ONLY_INT8_RTN, weightOnlyInt8);

const SHAPE = { hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 160, seed: 41 };
const PROJECTIONS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const LINEARS = [0, 1].flatMap((i) => PROJECTIONS.map((p) => `model.layers.${i}.${p}`));

let root: string;
let floatDir: string;
let quantDir: string;
let hfConfig: Record<string, unknown>;
/** Per quantized linear, q · s exactly as onnxruntime's DequantizeLinear computes it (float32), as float64. */
const dequantized = new Map<string, Float64Array>();
let floatRef: Qwen3Reference;
let int8Ref: Qwen3Reference;

/** y = x · Wᵀ: x [tokens, in], W [out, in], row-major. */
function matmulWT(w: Float64Array, x: Float64Array, inF: number, outF: number, tokens: number): Float64Array {
  const y = new Float64Array(tokens * outF);
  for (let t = 0; t < tokens; t++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let c = 0; c < inF; c++) s += w[o * inF + c]! * x[t * inF + c]!;
      y[t * outF + o] = s;
    }
  }
  return y;
}

const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-w8a16-'));
  floatDir = path.join(root, 'float');
  quantDir = path.join(root, 'int8');
  ({ config: hfConfig } = await makeTinyQwen3(floatDir, SHAPE));
  await quantize({ method: WEIGHT_ONLY_INT8_RTN, model: floatDir, output: quantDir });

  const ckpt = await Checkpoint.open(quantDir);
  try {
    for (const name of LINEARS) {
      const q = (await ckpt.read(`${name}.weight`)).data as Int8Array;
      const s = toFloat32(await ckpt.read(`${name}.weight_scale`));
      const cols = q.length / s.length;
      dequantized.set(name, Float64Array.from(q, (v, i) => Math.fround(v * s[Math.floor(i / cols)]!)));
    }
  } finally {
    await ckpt.close();
  }
  const weights = await loadRefWeights(floatDir);
  floatRef = new Qwen3Reference(refConfigFromHf(hfConfig), weights);
  int8Ref = new Qwen3Reference(refConfigFromHf(hfConfig), weights, {
    linear: (name, x, inF, outF, tokens) => {
      const w = dequantized.get(name);
      return w && matmulWT(w, x, inF, outF, tokens);
    },
  });
}, 300_000);
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('quantizeRowsRtn', () => {
  it('scales each row by max|W| / 127, rounds half to even, and gives an all-zero row scale 1', () => {
    const w = Float32Array.from([127, -63.5, 0.5, 1.5, /* zero row */ 0, 0, 0, 0, /* tiny row */ -2, 1, 0.25, 3]);
    const { q, scale } = quantizeRowsRtn(w, 3, 4);
    expect([...scale]).toEqual([1, 1, Math.fround(3 / 127)]);
    expect([...q.subarray(0, 8)]).toEqual([127, -64, 0, 2, 0, 0, 0, 0]);
    expect(q[11]).toBe(127);
  });

  it('rejects NaN and infinities, naming the row', () => {
    expect(() => quantizeRowsRtn(Float32Array.from([1, 2, 3, NaN]), 2, 2)).toThrow(/row 1 holds NaN/);
    expect(() => quantizeRowsRtn(Float32Array.from([Infinity, 0]), 1, 2)).toThrow(/row 0 holds Infinity/);
  });
});

describe('offline: quantize({ method: WeightOnlyInt8RTN })', () => {
  it('writes int8 decoder linears with per-channel scales, everything else unchanged, plus config and tokenizer files', async () => {
    const config = JSON.parse(await fs.readFile(path.join(quantDir, 'config.json'), 'utf8'));
    expect(config.quantization_config).toEqual({ quant_method: QUANT_METHOD, bits: 8, group: 'per-channel', symmetric: true, ignore: ['lm_head'] });
    expect({ ...config, quantization_config: undefined }).toEqual({ ...hfConfig, quantization_config: undefined });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'quantization_report.json']) {
      await expect(fs.access(path.join(quantDir, f))).resolves.toBeUndefined();
    }
    expect((await fs.readdir(root)).sort()).toEqual(['float', 'int8']); // no temporary folder left behind

    const src = await Checkpoint.open(floatDir);
    const out = await Checkpoint.open(quantDir);
    try {
      expect(out.names().sort()).toEqual([...src.names(), ...LINEARS.map((n) => `${n}.weight_scale`)].sort());
      for (const name of src.names()) {
        const layer = name.replace(/\.weight$/, '');
        if (!LINEARS.includes(layer)) {
          // Copied as is: same dtype (bf16), shape and bits.
          expect(out.info(name)).toMatchObject({ dtype: src.info(name).dtype, shape: src.info(name).shape });
          expect(Buffer.compare(bytes((await out.read(name)).data), bytes((await src.read(name)).data))).toBe(0);
          continue;
        }
        const [rows, cols] = src.info(name).shape as [number, number];
        expect(out.info(name)).toMatchObject({ dtype: 'I8', shape: [rows, cols] });
        expect(out.info(`${layer}.weight_scale`)).toMatchObject({ dtype: 'F32', shape: [rows] });
        const w = toFloat32(await src.read(name));
        const q = (await out.read(name)).data as Int8Array;
        const s = (await out.read(`${layer}.weight_scale`)).data as Float32Array;
        let worstStep = 0; // |q·s − W| / s: at most ½ for round to nearest
        for (let r = 0; r < rows; r++) {
          let max = 0;
          let maxQ = 0;
          for (let c = 0; c < cols; c++) {
            max = Math.max(max, Math.abs(w[r * cols + c]!));
            maxQ = Math.max(maxQ, Math.abs(q[r * cols + c]!));
            worstStep = Math.max(worstStep, Math.abs(q[r * cols + c]! * s[r]! - w[r * cols + c]!) / s[r]!);
          }
          expect(s[r]).toBe(Math.fround(max / 127));
          expect(maxQ).toBe(127);
        }
        expect(worstStep).toBeLessThanOrEqual(0.5 + 1e-5);
      }
    } finally {
      await src.close();
      await out.close();
    }
  });

  it('refuses an existing output unless overwrite, and replaces it with overwrite', async () => {
    await expect(quantize({ method: WEIGHT_ONLY_INT8_RTN, model: floatDir, output: quantDir })).rejects.toThrow(ConfigError);
    await expect(quantize({ method: WEIGHT_ONLY_INT8_RTN, model: floatDir, output: quantDir })).rejects.toThrow(/already exists/);
    const again = path.join(root, 'again');
    await fs.mkdir(again);
    await fs.writeFile(path.join(again, 'stale.txt'), 'old');
    const result = await quantize({ method: WEIGHT_ONLY_INT8_RTN, model: floatDir, output: again, overwrite: true, config: { maxShardBytes: 1e6 } });
    expect(result.summary).toMatch(/14 linear layers → int8/);
    const files = await fs.readdir(again);
    expect(files).not.toContain('stale.txt');
    expect(files).toContain('model.safetensors.index.json'); // sharded by maxShardBytes
    expect(files.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
    await fs.rm(again, { recursive: true });
    await expect(quantize({ method: WEIGHT_ONLY_INT8_RTN, model: quantDir, output: again })).rejects.toThrow(/already quantized/);
    expect((await fs.readdir(root)).sort()).toEqual(['float', 'int8']);
  });
});

describe('online: serving the int8 folder', () => {
  it('recognises only its own quantization_config', () => {
    expect(weightOnlyInt8.recognizes({ quant_method: QUANT_METHOD, bits: 8, group: 'per-channel' })).toBe(true);
    expect(weightOnlyInt8.recognizes({ quant_method: 'compressed-tensors', format: 'int-quantized' })).toBe(false);
  });

  it('LLM.generate on 4 prompts at once: detected method, output for every prompt, logprobs of the int8 reference', async () => {
    const llm = new LLM({ model: quantDir, quantization: WEIGHT_ONLY_INT8_RTN, threads: 2, maxModelLen: 256, maxNumSeqs: 4 });
    try {
      const loaded = await llm.ready();
      expect(loaded.quantization?.name).toBe(WEIGHT_ONLY_INT8_RTN);
      const prompts = ['I am', 'Today is', 'Llama is', 'The capital of France is'];
      const outs = await llm.generate(prompts, new SamplingParams({ temperature: 0, maxTokens: 8, logprobs: 1, ignoreEos: true }));
      expect(outs.map((o) => o.prompt)).toEqual(prompts);
      let worst = 0;
      for (const out of outs) {
        const { tokenIds, logprobs } = out.outputs[0]!;
        expect(tokenIds).toHaveLength(8);
        // The reference's next-token distributions along the sequence the engine generated.
        const ref = int8Ref.forward([...out.promptTokenIds, ...tokenIds]);
        tokenIds.forEach((id, i) => {
          const row = ref[out.promptTokenIds.length - 1 + i]!;
          worst = Math.max(worst, Math.abs(logprobs![i]![id]!.logprob - row[id]!));
          expect(row[id]!).toBeGreaterThan(row[argmax(row)]! - 1e-3); // greedy: the reference's argmax, up to near-ties
        });
      }
      console.log(`LLM.generate, 4 prompts × 8 greedy tokens: max |Δ logprob| vs the int8 reference ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-3);
    } finally {
      await llm.close();
    }
  });

  it('prompt log-probabilities at every position match the float64 reference with the same int8 weights within 1e-3', async () => {
    const loaded = await loadModel({ model: quantDir, threads: 2 }); // detected from config.json this time
    try {
      expect(loaded.quantization?.name).toBe(WEIGHT_ONLY_INT8_RTN);
      const ids = loaded.folder.tokenizer!.encode('Weight-only int8 keeps activations in float and stores each row of W as int8 times one scale.');
      const runner = new ModelRunner(loaded.session, loaded.config, { maxLen: 256 });
      const got = logSoftmaxRows(await runner.forward(new KvCache(), ids, ids.map((_, i) => i)), loaded.config.vocabSize);
      const int8 = int8Ref.forward(ids);
      const float = floatRef.forward(ids);
      let toInt8 = 0;
      let toFloat = 0;
      for (let t = 0; t < ids.length; t++) {
        toInt8 = Math.max(toInt8, maxAbsDiff(got[t]!, int8[t]!));
        toFloat = Math.max(toFloat, maxAbsDiff(got[t]!, float[t]!));
      }
      console.log(`${ids.length}-token prompt: max |Δ logprob| vs int8 reference ${toInt8.toExponential(2)}, vs float reference ${toFloat.toExponential(2)}`);
      expect(toInt8).toBeLessThan(1e-3);
      // The engine really runs the int8 weights: it is far closer to the int8 reference than to the float model.
      expect(toFloat).toBeGreaterThan(10 * toInt8);
    } finally {
      await loaded.session.dispose();
    }
  });
});

describe('bad checkpoints: errors name the file and the tensor', () => {
  /** A copy of the int8 folder with one tensor replaced. */
  async function withTensor(dirName: string, name: string, replace: (e: TensorEntry) => TensorEntry): Promise<string> {
    const dir = path.join(root, dirName);
    await fs.mkdir(dir);
    for (const f of await fs.readdir(quantDir)) if (!f.endsWith('.safetensors')) await fs.copyFile(path.join(quantDir, f), path.join(dir, f));
    const ckpt = await Checkpoint.open(quantDir);
    try {
      const entries: TensorEntry[] = [];
      for (const n of ckpt.names()) {
        const { dtype, shape } = ckpt.info(n);
        const entry: TensorEntry = { name: n, dtype, shape, data: (await ckpt.read(n)).data };
        entries.push(n === name ? replace(entry) : entry);
      }
      await writeSafetensors(path.join(dir, 'model.safetensors'), entries);
    } finally {
      await ckpt.close();
    }
    return dir;
  }

  async function loadError(dir: string): Promise<CheckpointError> {
    const err = await loadModel({ model: dir, threads: 1 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    return err as CheckpointError;
  }

  const tensor = 'model.layers.1.mlp.up_proj.weight';

  it('an int8 weight stored as int16', async () => {
    const dir = await withTensor('bad-dtype', tensor, (e) => ({ ...e, dtype: 'I16', data: Int16Array.from(e.data as Int8Array) }));
    const err = await loadError(dir);
    expect(err.message).toBe(`${path.join(dir, 'model.safetensors')}: tensor '${tensor}' has dtype I16, expected I8 for a weight-only int8 layer`);
    expect([err.file, err.tensor]).toEqual([path.join(dir, 'model.safetensors'), tensor]);
  });

  it('a weight_scale of the wrong length', async () => {
    const scale = 'model.layers.0.self_attn.k_proj.weight_scale';
    const dir = await withTensor('bad-scale', scale, (e) => ({ ...e, shape: [e.shape[0]! + 1], data: new Float32Array(e.shape[0]! + 1).fill(1) }));
    const err = await loadError(dir);
    expect(err.message).toBe(`${path.join(dir, 'model.safetensors')}: tensor '${scale}' has shape [65], expected [64] for a weight-only int8 layer`);
    expect(err.tensor).toBe(scale);
  });

  it('an int8 weight of the wrong shape (caught by core\'s checkpoint check, before the method)', async () => {
    const dir = await withTensor('bad-shape', tensor, (e) => ({ ...e, shape: [e.shape[1]!, e.shape[0]!] }));
    const err = await loadError(dir);
    expect(err.message).toMatch(new RegExp(`^${path.join(dir, 'model.safetensors').replace(/[.]/g, '\\.')}: tensor '${tensor.replace(/[.]/g, '\\.')}' has shape \\[64, 160\\]`));
    expect(err.tensor).toBe(tensor);
  });
});
