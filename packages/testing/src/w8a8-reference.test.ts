import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Checkpoint, f32ToBf16, roundBf16, toFloat32, writeSafetensors } from '@qllm/core';
import type { TensorEntry } from '@qllm/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRefWeights } from './load-weights.js';
import { argmax, topK } from './logprobs.js';
import { Qwen3Reference, refConfigFromHf } from './reference.js';
import type { LinearHook } from './reference.js';
import { makeTinyQwen3 } from './tiny-qwen3.js';
import { loadW8A8Checkpoint, loadW8A8Reference, matchQuantGroup } from './w8a8-reference.js';
import type { CompressedTensorsConfig } from './w8a8-reference.js';

const VOCAB = 512;
const PROMPT = Array.from({ length: 12 }, (_, i) => (i * 97 + 5) % VOCAB);
const W_CHANNEL = { num_bits: 8, type: 'int', strategy: 'channel', symmetric: true, dynamic: false };
const A_TOKEN = { num_bits: 8, type: 'int', strategy: 'token', symmetric: true, dynamic: true };
const A_STATIC = { num_bits: 8, type: 'int', strategy: 'tensor', symmetric: false, dynamic: false };
const LINEAR = /^(model\.layers\.\d+\.(self_attn|mlp)\.[a-z]+_proj|lm_head)\.weight$/;

let root: string;
let counter = 0;
beforeAll(async () => { root = await mkdtemp(path.join(tmpdir(), 'qllm-w8a8-')); });
afterAll(async () => { await rm(root, { recursive: true, force: true }); });
const fresh = () => path.join(root, `m${counter++}`);

/** How the test writes one linear: the original bf16, F32 dequantized values, or I8 with a token/static input scheme. */
type Plan = 'float' | 'dequantized' | 'token' | { scale: number; zeroPoint?: number };
interface Quantized { q: Int8Array; scale: Float64Array; out: number; inp: number }

/** Test-only quantizer: per-channel absmax int8 with the scale rounded to its stored dtype. */
function quantize(w: Float32Array, out: number, inp: number, scaleDtype: 'F32' | 'BF16'): Quantized {
  const q = new Int8Array(out * inp);
  const scale = new Float64Array(out);
  for (let n = 0; n < out; n++) {
    let absmax = 0;
    for (let k = 0; k < inp; k++) absmax = Math.max(absmax, Math.abs(w[n * inp + k]!));
    const s = (scaleDtype === 'BF16' ? roundBf16 : Math.fround)(absmax / 127) || 1;
    scale[n] = s;
    for (let k = 0; k < inp; k++) q[n * inp + k] = Math.max(-128, Math.min(127, Math.round(w[n * inp + k]! / s)));
  }
  return { q, scale, out, inp };
}

/** Copies the float folder `src` to a new W8A8 folder with `quantization_config` `qc`, each linear as `plan` says. */
async function writeW8A8(src: string, qc: object, plan: (name: string) => Plan, scaleDtype: 'F32' | 'BF16' = 'F32') {
  const dir = fresh();
  await mkdir(dir);
  const quantized = new Map<string, Quantized>();
  const ckpt = await Checkpoint.open(src);
  const entries: TensorEntry[] = [];
  for (const tensorName of ckpt.names()) {
    const t = await ckpt.read(tensorName);
    const name = tensorName.replace(/\.weight$/, '');
    const p = LINEAR.test(tensorName) ? plan(name) : 'float';
    if (p === 'float') { entries.push({ name: tensorName, ...t }); continue; }
    const [out, inp] = t.shape as [number, number];
    const qz = quantize(toFloat32(t), out, inp, scaleDtype);
    quantized.set(name, qz);
    if (p === 'dequantized') {
      entries.push({ name: tensorName, dtype: 'F32', shape: [out, inp], data: Float32Array.from(qz.q, (v, i) => v * qz.scale[Math.floor(i / inp)]!) });
      continue;
    }
    entries.push({ name: tensorName, dtype: 'I8', shape: [out, inp], data: qz.q });
    const scaleData = scaleDtype === 'BF16' ? f32ToBf16(qz.scale) : Float32Array.from(qz.scale);
    entries.push({ name: `${name}.weight_scale`, dtype: scaleDtype, shape: [out, 1], data: scaleData });
    if (p === 'token') continue;
    entries.push({ name: `${name}.input_scale`, dtype: 'F32', shape: [1], data: Float32Array.of(p.scale) });
    if (p.zeroPoint !== undefined) entries.push({ name: `${name}.input_zero_point`, dtype: 'I8', shape: [1], data: Int8Array.of(p.zeroPoint) });
  }
  await ckpt.close();
  await writeSafetensors(path.join(dir, 'model.safetensors'), entries, { format: 'pt' });
  const config = JSON.parse(await readFile(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, quantization_config: qc }, null, 2));
  return { dir, quantized };
}

const quantConfig = (groups: Record<string, [string[], object | null]>, ignore: string[]): CompressedTensorsConfig => ({
  quant_method: 'compressed-tensors',
  format: 'int-quantized',
  config_groups: Object.fromEntries(Object.entries(groups).map(([g, [targets, input_activations]]) => [g, { targets, weights: W_CHANNEL, input_activations }])),
  ignore,
});

async function floatReference(dir: string): Promise<Qwen3Reference> {
  const raw = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  return new Qwen3Reference(refConfigFromHf(raw), await loadRefWeights(dir));
}

function maxAbsDiff(a: Float64Array[], b: Float64Array[]): number {
  let m = 0;
  a.forEach((row, t) => row.forEach((v, i) => { m = Math.max(m, Math.abs(v - b[t]![i]!)); }));
  return m;
}

/**
 * How far quantized log-probs are from the float ones: worst entry, worst top-8 entry, mean over everything, argmax
 * agreement. This random model is sensitive to 8-bit noise: per-token W8A8 moves its top-8 log-probs by up to ~0.22
 * and the worst tail entry by ~0.48 (weights-only or activations-only int8 each give ~0.3), a sim bug by far more.
 */
function expectClose(lp: Float64Array[], ref: Float64Array[]): void {
  const d = drift(lp, ref);
  expect(d.all).toBeGreaterThan(1e-3); // it did quantize
  expect(d.top8).toBeLessThan(0.4);
  expect(d.mean).toBeLessThan(0.15);
  expect(d.sameArgmax).toBe(ref.length);
}

function drift(lp: Float64Array[], ref: Float64Array[]) {
  let top8 = 0;
  let sum = 0;
  let sameArgmax = 0;
  ref.forEach((r, t) => {
    for (const [id] of topK(r, 8)) top8 = Math.max(top8, Math.abs(lp[t]![id]! - r[id]!));
    r.forEach((v, i) => { sum += Math.abs(lp[t]![i]! - v); });
    if (argmax(lp[t]!) === argmax(r)) sameArgmax++;
  });
  return { all: maxAbsDiff(lp, ref), top8, mean: sum / (ref.length * VOCAB), sameArgmax };
}

describe('loadW8A8Reference on a hand-made W8A8 folder', () => {
  let src: string;
  let float: Qwen3Reference;
  let floatLp: Float64Array[];
  beforeAll(async () => {
    ({ dir: src } = await makeTinyQwen3(fresh(), { vocabSize: VOCAB, tokenizer: false, tieWordEmbeddings: false }));
    float = await floatReference(src);
    floatLp = float.forward(PROMPT);
  });

  it('(a) per-token activations on every linear, lm_head included: log-probs close to the float model', async () => {
    const { dir } = await writeW8A8(src, quantConfig({ group_0: [['Linear'], A_TOKEN] }, []), () => 'token');
    const ckpt = await loadW8A8Checkpoint(dir);
    expect(ckpt.layers.size).toBe(2 * 7 + 1);
    expect([...ckpt.layers.values()].every((l) => l.input.kind === 'token' && l.group === 'group_0')).toBe(true);
    expectClose((await loadW8A8Reference(dir)).forward(PROMPT), floatLp);
  });

  it("(a) static asymmetric per-tensor scales from a float run's min/max (bf16 weight scales): still close", async () => {
    const range = new Map<string, [number, number]>();
    const record: LinearHook = (name, x) => {
      let [lo, hi] = range.get(name) ?? [0, 0];
      for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
      range.set(name, [lo, hi]);
      return undefined;
    };
    // Calibrated on the evaluation prompt itself, so nothing clips (other tokens of this random model exceed the range).
    new Qwen3Reference(float.config, await loadRefWeights(src), { linear: record }).forward(PROMPT);
    const plan = (name: string): Plan => {
      if (name === 'lm_head') return 'token';
      const [lo, hi] = range.get(name)!;
      const scale = Math.fround((hi - lo) / 255);
      return { scale, zeroPoint: Math.max(-128, Math.min(127, Math.round(-128 - lo / scale))) };
    };
    const qc = quantConfig({ static: [['re:model\\.layers\\.'], A_STATIC], dyn: [['Linear'], A_TOKEN] }, []);
    const { dir } = await writeW8A8(src, qc, plan, 'BF16');
    const ckpt = await loadW8A8Checkpoint(dir);
    expect(ckpt.layers.get('lm_head')!.input.kind).toBe('token');
    const upPlan = plan('model.layers.1.mlp.up_proj') as { scale: number; zeroPoint: number };
    expect(upPlan.zeroPoint).not.toBe(0);
    expect(ckpt.layers.get('model.layers.1.mlp.up_proj')!.input).toEqual({ kind: 'static', ...upPlan });
    expectClose((await loadW8A8Reference(dir)).forward(PROMPT), floatLp);
  });

  it("(b) ignore: ['re:.*'] runs every linear in float: exactly the float reference of the dequantized weights", async () => {
    const qc = quantConfig({ group_0: [['Linear'], A_STATIC] }, ['re:.*']);
    const { dir, quantized } = await writeW8A8(src, qc, () => 'dequantized', 'BF16');
    const ckpt = await loadW8A8Checkpoint(dir);
    expect(ckpt.layers.size).toBe(0);
    const floatWeights = await loadRefWeights(src);
    const dequantized = new Qwen3Reference(float.config, (name) => {
      const qz = quantized.get(name.replace(/\.weight$/, ''));
      return qz ? Float64Array.from(qz.q, (v, i) => v * qz.scale[Math.floor(i / qz.inp)]!) : floatWeights(name);
    });
    expect(quantized.size).toBe(2 * 7 + 1);
    expect(maxAbsDiff((await loadW8A8Reference(dir)).forward(PROMPT), dequantized.forward(PROMPT))).toBe(0);
  });
});

describe('(c) one linear of a 1-layer W8A8 folder, by hand', () => {
  const S = 0.0625; // a power of two, so the ties below are exact
  const ZP = -7;
  let ckpt: Awaited<ReturnType<typeof loadW8A8Checkpoint>>;
  let quantized: Map<string, Quantized>;
  beforeAll(async () => {
    const { dir: src } = await makeTinyQwen3(fresh(), { vocabSize: VOCAB, tokenizer: false, numLayers: 1 });
    const qc = quantConfig({ group_0: [['re:.*down_proj'], A_STATIC], group_1: [['Linear'], A_TOKEN] }, ['lm_head']);
    const plan = (name: string): Plan => (name.endsWith('down_proj') ? { scale: S, zeroPoint: ZP } : 'token');
    const written = await writeW8A8(src, qc, plan, 'BF16');
    quantized = written.quantized;
    ckpt = await loadW8A8Checkpoint(written.dir);
  });

  /** y[t, n] = Σ_k x̂[t, k] · q[n, k] · scale[n], from the values the test wrote. */
  function direct(name: string, xhat: number[][]): number[] {
    const { q, scale, out, inp } = quantized.get(name)!;
    return xhat.flatMap((row) => Array.from({ length: out }, (_, n) => {
      let s = 0;
      for (let k = 0; k < inp; k++) s += row[k]! * (q[n * inp + k]! * scale[n]!);
      return s;
    }));
  }
  const pad = (vals: number[], n: number) => [...vals, ...Array<number>(n - vals.length).fill(0)];
  const maxErr = (a: Float64Array, b: number[]) => Math.max(...b.map((v, i) => Math.abs(v - a[i]!)));

  it('static asymmetric: round half to even, then + zero point, clamp to int8, − zero point', () => {
    const { intermediateSize: I, hiddenSize: D } = ckpt.config;
    const name = 'model.layers.0.mlp.down_proj';
    expect(ckpt.layers.get(name)!.input).toEqual({ kind: 'static', scale: S, zeroPoint: ZP });
    // Rounds x/s first, then adds z (ONNX QuantizeLinear's order; at a tie with odd z, round(x/s + z) would differ).
    // x/s:              200 (clamps high: 193 → 127), −126.4 (−126 − 7 → clamps to −128), 2.5 → 2, 3.5 → 4, −2.5 → −2,
    //                   0.3 → 0, −130 (→ −128), 129 (129 − 7 = 122 fits: kept, where z = 0 would clamp to 127)
    const x0 = [200, -126.4, 2.5, 3.5, -2.5, 0.3, -130, 129].map((v) => v * S);
    const xhat0 = [134, -121, 2, 4, -2, 0, -121, 129].map((v) => v * S);
    const x1 = [1, 0, 0, 0, 0, 0, 0, 0, 0, -0.5, 1000].map((v) => v * S); // the same scale for the second token
    const xhat1 = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 134].map((v) => v * S);
    const x = Float64Array.from([...pad(x0, I), ...pad(x1, I)]);
    const y = ckpt.linear(name, x, I, D, 2)!;
    expect(y).toHaveLength(2 * D);
    expect(maxErr(y, direct(name, [pad(xhat0, I), pad(xhat1, I)]))).toBeLessThan(1e-12);
  });

  it('dynamic per token: s_t = max|x_t| / 127, round half to even; a zero row gives 0', () => {
    const { hiddenSize: D, numHeads: H, headDim: hd } = ckpt.config;
    const name = 'model.layers.0.self_attn.q_proj';
    expect(ckpt.layers.get(name)!.input).toEqual({ kind: 'token' });
    const s = 0.125; // 15.875 / 127
    const x1 = [127, -63.5, 0.5, 1.5, 100.4].map((v) => v * s);
    const xhat1 = [127, -64, 0, 2, 100].map((v) => v * s);
    const y = ckpt.linear(name, Float64Array.from([...pad([], D), ...pad(x1, D)]), D, H * hd, 2)!;
    expect(Array.from(y.subarray(0, H * hd)).every((v) => v === 0)).toBe(true);
    expect(maxErr(y, direct(name, [pad([], D), pad(xhat1, D)]))).toBeLessThan(1e-12);
  });

  it('lm_head (ignored) runs in float: the hook declines it', () => {
    expect(ckpt.layers.has('lm_head')).toBe(false);
    expect(ckpt.linear('lm_head', new Float64Array(ckpt.config.hiddenSize), ckpt.config.hiddenSize, VOCAB, 1)).toBeUndefined();
  });
});

describe('(d) target precedence and ignore', () => {
  const qc = quantConfig({
    all: [['Linear'], A_TOKEN],
    down: [['re:.*mlp\\.down_proj'], A_STATIC],
    q0: [['model.layers.0.self_attn.q_proj', 're:model\\.layers\\.0\\.self_attn\\.q'], A_STATIC],
    down0: [['model.layers.0.mlp.down_proj'], A_STATIC],
    prefix: [['re:model\\.layers\\.3'], A_TOKEN],
  }, ['lm_head', 're:.*layers\\.1\\.self_attn\\.k_proj', 'model.layers.2.mlp.down_proj']);

  it('an exact name beats a regex beats Linear; ignore beats all; re: is matched at the start only', () => {
    expect(matchQuantGroup(qc, 'model.layers.0.self_attn.q_proj')).toBe('q0');
    expect(matchQuantGroup(qc, 'model.layers.1.self_attn.q_proj')).toBe('all');
    expect(matchQuantGroup(qc, 'model.layers.0.mlp.down_proj')).toBe('down0'); // exact beats the regex of `down`
    expect(matchQuantGroup(qc, 'model.layers.1.mlp.down_proj')).toBe('down');
    expect(matchQuantGroup(qc, 'model.layers.2.mlp.down_proj')).toBeUndefined();
    expect(matchQuantGroup(qc, 'model.layers.1.self_attn.k_proj')).toBeUndefined();
    expect(matchQuantGroup(qc, 'model.layers.0.self_attn.k_proj')).toBe('all');
    expect(matchQuantGroup(qc, 'lm_head')).toBeUndefined();
    expect(matchQuantGroup(qc, 'model.layers.3.mlp.up_proj')).toBe('prefix'); // a prefix match is enough (re.match)
    expect(matchQuantGroup({ ...qc, ignore: ['re:layers'] }, 'model.layers.0.mlp.up_proj')).toBe('all'); // not re.search
    expect(matchQuantGroup({ ...qc, ignore: ['Linear'] }, 'model.layers.0.self_attn.q_proj')).toBeUndefined();
    expect(() => matchQuantGroup(qc, 'model.layers.3.mlp.down_proj')).toThrow(/down and prefix/);
  });

  it('the loader checks the folder against the config', async () => {
    const { dir: src } = await makeTinyQwen3(fresh(), { vocabSize: VOCAB, tokenizer: false, numLayers: 1 });
    const linear = quantConfig({ g: [['Linear'], A_STATIC] }, ['lm_head']);
    const staticPlan = (): Plan => ({ scale: 0.05, zeroPoint: 3 });
    await expect(loadW8A8Checkpoint((await writeW8A8(src, linear, () => 'float')).dir)).rejects.toThrow(/q_proj\.weight must be I8/);
    await expect(loadW8A8Checkpoint((await writeW8A8(src, linear, () => 'token')).dir)).rejects.toThrow(/input_scale is missing/);
    const some = quantConfig({ g: [['re:.*mlp'], A_STATIC] }, []);
    await expect(loadW8A8Checkpoint((await writeW8A8(src, some, staticPlan)).dir)).rejects.toThrow(/self_attn\.q_proj is not quantized by the config but has a weight_scale/);
    const ok = await loadW8A8Checkpoint((await writeW8A8(src, some, (n) => (n.includes('mlp') ? staticPlan() : 'float'))).dir);
    expect([...ok.layers.keys()].sort()).toEqual(['model.layers.0.mlp.down_proj', 'model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.up_proj']);
    expect(ok.layers.get('model.layers.0.mlp.up_proj')!.input).toEqual({ kind: 'static', scale: Math.fround(0.05), zeroPoint: 3 });
    const weightOnly = await loadW8A8Checkpoint((await writeW8A8(src, quantConfig({ g: [['Linear'], null] }, ['lm_head']), () => 'token')).dir);
    expect([...weightOnly.layers.values()].map((l) => l.input.kind)).toEqual(Array(7).fill('none')); // input_activations: null
  });
});
