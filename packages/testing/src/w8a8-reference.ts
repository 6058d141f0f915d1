// A float64 simulator of a compressed-tensors W8A8 ("int-quantized") Qwen3 checkpoint: it runs exactly what the
// folder says, so an int8 engine can be checked against it. Written from the format description alone (no code
// shared with any quantization plugin):
//
//   weights (channel, symmetric):  W[n,k] = q[n,k] · weight_scale[n]                      q: I8 [out, in]
//   activations, static tensor:    x̂ = (clamp(roundHalfEven(x/s) + z, −128, 127) − z) · s  s = input_scale, z = input_zero_point (0 if absent)
//                                  (z is added after rounding, as ONNX QuantizeLinear does)
//   activations, dynamic token:    s_t = max_k |x[t,k]| / 127, x̂ = clamp(roundHalfEven(x/s_t), −128, 127) · s_t   (zero row → 0)
//   y = x̂ · Wᵀ in float64
//
// Layers no config group targets (or that `ignore` matches) run in float, as in a float checkpoint.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Checkpoint, toFloat32 } from '@qllm/core';
import type { HostTensor } from '@qllm/core';
import { Qwen3Reference, matmulWT, refConfigFromHf } from './reference.js';
import type { LinearHook, Qwen3RefConfig, RefWeights } from './reference.js';

/** One config group's QuantizationArgs, as far as int-quantized W8A8 needs them. */
export interface QuantArgs {
  num_bits?: number;
  type?: string;
  strategy?: string;
  symmetric?: boolean;
  dynamic?: boolean | string;
  group_size?: number | null;
}

/** The `quantization_config` of a compressed-tensors config.json. */
export interface CompressedTensorsConfig {
  quant_method: string;
  format?: string;
  config_groups: Record<string, { targets: string[]; weights?: QuantArgs | null; input_activations?: QuantArgs | null; output_activations?: QuantArgs | null }>;
  ignore?: string[];
}

/** How a quantized linear's input is fake-quantized. */
export type W8A8Input =
  | { kind: 'static'; scale: number; zeroPoint: number }
  | { kind: 'token' }
  | { kind: 'none' };

/** One quantized linear layer as read from the folder. */
export interface W8A8Linear {
  group: string;
  inFeatures: number;
  outFeatures: number;
  /** The dequantized weight q·weight_scale, row-major [out, in]. */
  weight: Float64Array;
  input: W8A8Input;
}

export interface W8A8Checkpoint {
  config: Qwen3RefConfig;
  quantization: CompressedTensorsConfig;
  /** Float weights of everything, quantized linears dequantized. */
  weights: RefWeights;
  /** The quantized linears by HF name (without `.weight`); absent layers run in float. */
  layers: ReadonlyMap<string, W8A8Linear>;
  /** The simulator: fake-quantizes the input of every quantized linear, undefined (float) for the others. */
  linear: LinearHook;
}

/** Python re.match: anchored at the start only. `(?P<name>` is rewritten to JS's `(?<name>`. */
function reMatch(pattern: string, name: string): boolean {
  return new RegExp(`^(?:${pattern.replace(/\(\?P</g, '(?<')})`).test(name);
}

/** 3 = exact layer name, 2 = `re:` regex, 1 = the `Linear` class (every linear here), 0 = no match. */
function matchLevel(target: string, name: string): number {
  if (target === name) return 3;
  if (target.startsWith('re:')) return reMatch(target.slice(3), name) ? 2 : 0;
  return target === 'Linear' ? 1 : 0;
}

/**
 * The config group that quantizes linear layer `name`, or undefined when it stays float. `ignore` (exact names,
 * `re:` regexes or `Linear`) wins; otherwise the most specific matching target wins: an exact name over a regex over
 * `Linear`. Two groups matching at the same, best level is an error.
 */
export function matchQuantGroup(qc: CompressedTensorsConfig, name: string): string | undefined {
  if ((qc.ignore ?? []).some((t) => matchLevel(t, name) > 0)) return undefined;
  let best = 0;
  let groups: string[] = [];
  for (const [group, { targets }] of Object.entries(qc.config_groups)) {
    const level = Math.max(0, ...targets.map((t) => matchLevel(t, name)));
    if (level > best) [best, groups] = [level, [group]];
    else if (level === best && level > 0) groups.push(group);
  }
  if (groups.length > 1) throw new Error(`quantization_config: ${name} is matched equally by ${groups.join(' and ')}`);
  return groups[0];
}

/** Round half to even (torch.round / numpy.round). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f; // exact
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

const clampI8 = (q: number) => Math.min(127, Math.max(-128, q));

/** x̂ for a [T, K] input under `input`, as a new array. */
function fakeQuantInput(input: W8A8Input, x: Float64Array, K: number, T: number): Float64Array {
  if (input.kind === 'none') return x.slice();
  const out = new Float64Array(T * K);
  if (input.kind === 'static') {
    const { scale: s, zeroPoint: z } = input;
    for (let i = 0; i < T * K; i++) out[i] = (clampI8(roundHalfEven(x[i]! / s) + z) - z) * s;
    return out;
  }
  for (let t = 0; t < T; t++) {
    let max = 0;
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(x[t * K + k]!));
    if (max === 0) continue; // a zero row stays 0
    const s = max / 127;
    for (let k = 0; k < K; k++) out[t * K + k] = clampI8(roundHalfEven(x[t * K + k]! / s)) * s;
  }
  return out;
}

/** The HF names of Qwen3's linear layers. */
function linearShapes(c: Qwen3RefConfig): Map<string, [out: number, inp: number]> {
  const { hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: hd, vocabSize: V } = c;
  const m = new Map<string, [number, number]>();
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}self_attn.q_proj`, [H * hd, D]).set(`${p}self_attn.k_proj`, [K * hd, D]).set(`${p}self_attn.v_proj`, [K * hd, D]);
    m.set(`${p}self_attn.o_proj`, [D, H * hd]).set(`${p}mlp.gate_proj`, [I, D]).set(`${p}mlp.up_proj`, [I, D]).set(`${p}mlp.down_proj`, [D, I]);
  }
  return m.set('lm_head', [V, D]);
}

function checkArgs(group: string, w: QuantArgs | null | undefined, a: QuantArgs | null | undefined, out: QuantArgs | null | undefined): void {
  const fail = (what: string) => new Error(`quantization_config.config_groups.${group}: unsupported ${what}`);
  if (!w || (w.num_bits ?? 8) !== 8 || (w.type ?? 'int') !== 'int' || w.strategy !== 'channel' || w.symmetric === false || w.dynamic) {
    throw fail(`weights ${JSON.stringify(w)} (int-quantized W8A8 needs 8-bit int, strategy channel, symmetric, static)`);
  }
  if (out) throw fail('output_activations');
  if (!a) return;
  if ((a.num_bits ?? 8) !== 8 || (a.type ?? 'int') !== 'int') throw fail(`input_activations ${JSON.stringify(a)}`);
  const staticTensor = a.strategy === 'tensor' && a.dynamic === false;
  const dynamicToken = a.strategy === 'token' && a.dynamic === true && a.symmetric !== false;
  if (!staticTensor && !dynamicToken) throw fail(`input_activations ${JSON.stringify(a)} (need static tensor or dynamic symmetric token)`);
}

const isInt = (t: HostTensor) => ['I8', 'I16', 'I32', 'I64', 'U8'].includes(t.dtype);
const floats = (t: HostTensor) => (t.dtype === 'F64' ? (t.data as Float64Array) : Float64Array.from(toFloat32(t)));
const ints = (t: HostTensor) => Array.from(t.data as ArrayLike<number | bigint>, Number);

/** Reads a compressed-tensors int-quantized W8A8 Qwen3 folder (single file or shards) into float64. */
export async function loadW8A8Checkpoint(dir: string): Promise<W8A8Checkpoint> {
  const raw = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const config = refConfigFromHf(raw);
  const qc = raw['quantization_config'] as CompressedTensorsConfig | undefined;
  if (qc?.quant_method !== 'compressed-tensors' || qc.format !== 'int-quantized' || typeof qc.config_groups !== 'object') {
    throw new Error(`${dir}: config.json quantization_config must be compressed-tensors with format int-quantized`);
  }
  for (const [g, { weights, input_activations, output_activations }] of Object.entries(qc.config_groups)) {
    checkArgs(g, weights, input_activations, output_activations);
  }

  const ckpt = await Checkpoint.open(dir);
  const tensors = new Map<string, Float64Array>();
  const layers = new Map<string, W8A8Linear>();
  try {
    const read = async (name: string, what = 'tensor'): Promise<HostTensor> => {
      if (!ckpt.has(name)) throw new Error(`${dir}: ${what} ${name} is missing`);
      return ckpt.read(name);
    };
    for (const [name, [out, inp]] of linearShapes(config)) {
      const group = matchQuantGroup(qc, name);
      if (group === undefined) {
        if (ckpt.has(`${name}.weight_scale`)) throw new Error(`${dir}: ${name} is not quantized by the config but has a weight_scale`);
        continue; // read below as a float tensor (lm_head of a tied model is the embedding)
      }
      if (name === 'lm_head' && config.tieWordEmbeddings && !ckpt.has('lm_head.weight')) {
        throw new Error(`${dir}: lm_head is quantized by ${group} but the tied checkpoint has no lm_head.weight`);
      }
      const q = await read(`${name}.weight`, `quantized weight of ${group}`);
      if (q.dtype !== 'I8' || q.shape.join() !== `${out},${inp}`) {
        throw new Error(`${dir}: ${name}.weight must be I8 [${out}, ${inp}] (got ${q.dtype} [${q.shape.join(', ')}])`);
      }
      const scale = floats(await read(`${name}.weight_scale`, 'weight scale'));
      if (scale.length !== out) throw new Error(`${dir}: ${name}.weight_scale must hold ${out} values (got ${scale.length})`);
      if (ckpt.has(`${name}.weight_zero_point`) && ints(await ckpt.read(`${name}.weight_zero_point`)).some((z) => z !== 0)) {
        throw new Error(`${dir}: ${name}.weight_zero_point is nonzero, but weights are symmetric`);
      }
      const qv = q.data as Int8Array;
      const weight = new Float64Array(out * inp);
      for (let n = 0; n < out; n++) for (let k = 0; k < inp; k++) weight[n * inp + k] = qv[n * inp + k]! * scale[n]!;
      tensors.set(`${name}.weight`, weight);

      const args = qc.config_groups[group]!.input_activations;
      let input: W8A8Input = { kind: 'none' };
      if (args?.dynamic === false) {
        const s = floats(await read(`${name}.input_scale`, 'static input scale'));
        const zName = `${name}.input_zero_point`;
        const zp = ckpt.has(zName) ? await ckpt.read(zName) : undefined;
        if (s.length !== 1 || !(s[0]! > 0)) throw new Error(`${dir}: ${name}.input_scale must be one positive value`);
        if (zp && (!isInt(zp) || zp.data.length !== 1)) throw new Error(`${dir}: ${zName} must be one integer`);
        input = { kind: 'static', scale: s[0]!, zeroPoint: zp ? ints(zp)[0]! : 0 };
      } else {
        if (ckpt.has(`${name}.input_scale`)) throw new Error(`${dir}: ${name} has an input_scale but ${group} is not static`);
        if (args) input = { kind: 'token' };
      }
      layers.set(name, { group, inFeatures: inp, outFeatures: out, weight, input });
    }
    for (const name of ckpt.names()) {
      if (tensors.has(name) || /\.(weight_scale|weight_zero_point|input_scale|input_zero_point)$/.test(name)) continue;
      const t = await ckpt.read(name);
      if (isInt(t)) throw new Error(`${dir}: ${name} is ${t.dtype} but no config group quantizes it`);
      tensors.set(name, floats(t));
    }
  } finally {
    await ckpt.close();
  }

  const weights: RefWeights = (name) => {
    const w = tensors.get(name);
    if (!w) throw new RangeError(`loadW8A8Checkpoint: tensor "${name}" is not in ${dir}`);
    return w;
  };
  const linear: LinearHook = (name, x, inF, outF, T) => {
    const L = layers.get(name);
    if (!L) return undefined;
    if (inF !== L.inFeatures || outF !== L.outFeatures || x.length !== T * inF) {
      throw new RangeError(`${name}: called as [${T}, ${inF}] → ${outF} with ${x.length} values; the layer is ${L.inFeatures} → ${L.outFeatures}`);
    }
    return matmulWT(L.weight, fakeQuantInput(L.input, x, inF, T), inF, outF, T);
  };
  return { config, quantization: qc, weights, layers, linear };
}

/** A Qwen3Reference that runs the W8A8 folder `dir` as the file says (see loadW8A8Checkpoint). */
export async function loadW8A8Reference(dir: string): Promise<Qwen3Reference> {
  const c = await loadW8A8Checkpoint(dir);
  return new Qwen3Reference(c.config, c.weights, { linear: c.linear });
}
