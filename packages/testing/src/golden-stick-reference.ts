// A float64 simulator of a Golden Stick A8W8 Qwen3 checkpoint (MindSpore Golden Stick's MindFormers layout, as
// vLLM-MindSpore serves it on Ascend): it runs exactly what the folder says, so an int8 engine can be checked against
// it. Written from the layout table and the deployed math of reference/golden-stick.md (§2, §3) alone, sharing no
// code with any quantization plugin.
//
// Names (layer i; X in wq, wk, wv, wo under `attention.`, w1, w2, w3 under `feed_forward.`):
//   model.tok_embeddings.embedding_weight, model.norm_out.weight, lm_head.weight (absent when tied)
//   model.layers.{i}.attention_norm.weight, .ffn_norm.weight, .attention.q_norm.weight, .attention.k_norm.weight
// A static linear m (QuantV2 + QuantBatchMatmul):
//   qx[t,k] = clamp(roundHalfEven(x[t,k] / m.quant_op.input_scale[k] + m.quant_op.input_zp[k]), −128, 127)
//   y[t,n]  = (Σ_k qx[t,k]·m._layer.weight[n,k] + m._layer.matmul.quant_bias[n]) · m._layer.matmul.dequant_scale[n]
// A dynamic per-token linear m (DynamicQuant + QuantBatchMatmul with pertoken_scale):
//   s_t = max_k |x[t,k]| / 127, q = clamp(roundHalfEven(x/s_t), −128, 127), y[t,n] = s_t·weight_scale[n]·Σ_k q·W[n,k]
// A float linear m: m.weight.
import { Checkpoint, toFloat32, type HostTensor } from '@qllm/core';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Qwen3Reference, refConfigFromHf } from './reference.js';
import type { LinearHook, Qwen3RefConfig, RefWeights } from './reference.js';
import { roundHalfEven } from './w8a8-reference.js';

/** HF name → MindFormers name, for the float tensors and the linear modules of a Qwen3 with `layers` layers. */
export function goldenStickNames(layers: number): { tensors: Map<string, string>; linears: Map<string, string> } {
  const tensors = new Map<string, string>([
    ['model.embed_tokens.weight', 'model.tok_embeddings.embedding_weight'],
    ['model.norm.weight', 'model.norm_out.weight'],
  ]);
  const linears = new Map<string, string>([['lm_head', 'lm_head']]);
  for (let i = 0; i < layers; i++) {
    const hf = `model.layers.${i}.`;
    const mf = `model.layers.${i}.`;
    tensors.set(`${hf}input_layernorm.weight`, `${mf}attention_norm.weight`);
    tensors.set(`${hf}post_attention_layernorm.weight`, `${mf}ffn_norm.weight`);
    tensors.set(`${hf}self_attn.q_norm.weight`, `${mf}attention.q_norm.weight`);
    tensors.set(`${hf}self_attn.k_norm.weight`, `${mf}attention.k_norm.weight`);
    for (const [h, m] of [['q', 'wq'], ['k', 'wk'], ['v', 'wv'], ['o', 'wo']]) linears.set(`${hf}self_attn.${h}_proj`, `${mf}attention.${m}`);
    for (const [h, m] of [['gate', 'w1'], ['up', 'w3'], ['down', 'w2']]) linears.set(`${hf}mlp.${h}_proj`, `${mf}feed_forward.${m}`);
  }
  return { tensors, linears };
}

/** One linear of the folder, as the simulator runs it. */
export type GoldenStickSimLinear =
  | { kind: 'static'; inF: number; outF: number; q: Int8Array; inputScale: Float64Array; inputZp: Float64Array; quantBias: Float64Array; dequantScale: Float64Array }
  | { kind: 'dynamic'; inF: number; outF: number; q: Int8Array; weightScale: Float64Array };

export interface GoldenStickCheckpoint {
  config: Qwen3RefConfig;
  /** Float weights by HF name; a quantized linear's weight is its dequantized approximation (unused by the hook). */
  weights: RefWeights;
  /** Quantized linears by HF name. */
  layers: ReadonlyMap<string, GoldenStickSimLinear>;
  linear: LinearHook;
}

const f64 = (t: HostTensor) => (t.dtype === 'F64' ? (t.data as Float64Array) : Float64Array.from(toFloat32(t)));
const ints = (t: HostTensor) => Float64Array.from(t.data as ArrayLike<number>, Number);
const clampI8 = (v: number) => Math.min(127, Math.max(-128, v));

/** Reads a Golden Stick A8W8 Qwen3 folder (one file or HF-style shards) into float64. */
export async function loadGoldenStickCheckpoint(dir: string): Promise<GoldenStickCheckpoint> {
  const config = refConfigFromHf(JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>);
  const names = goldenStickNames(config.numLayers);
  const ckpt = await Checkpoint.open(dir);
  const weights = new Map<string, Float64Array>();
  const layers = new Map<string, GoldenStickSimLinear>();
  try {
    const read = async (name: string, dtype?: string, shape?: number[]): Promise<HostTensor> => {
      if (!ckpt.has(name)) throw new Error(`${dir}: ${name} is missing`);
      const t = await ckpt.read(name);
      if (dtype && t.dtype !== dtype) throw new Error(`${dir}: ${name} is ${t.dtype}, expected ${dtype}`);
      if (shape && t.shape.join() !== shape.join()) throw new Error(`${dir}: ${name} is [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      return t;
    };
    for (const [hf, mf] of names.tensors) weights.set(hf, f64(await read(mf)));
    for (const [hf, m] of names.linears) {
      if (hf === 'lm_head' && config.tieWordEmbeddings && !ckpt.has('lm_head.weight')) continue;
      if (!ckpt.has(`${m}._layer.weight`)) {
        weights.set(`${hf}.weight`, f64(await read(`${m}.weight`)));
        continue;
      }
      const w = await read(`${m}._layer.weight`, 'I8');
      const [outF, inF] = w.shape as [number, number];
      const q = w.data as Int8Array;
      let L: GoldenStickSimLinear;
      if (ckpt.has(`${m}.quant_op.input_scale`)) {
        L = {
          kind: 'static', inF, outF, q,
          inputScale: f64(await read(`${m}.quant_op.input_scale`, undefined, [inF])),
          inputZp: ints(await read(`${m}.quant_op.input_zp`, 'I8', [inF])),
          quantBias: ints(await read(`${m}._layer.matmul.quant_bias`, 'I32', [outF])),
          dequantScale: f64(await read(`${m}._layer.matmul.dequant_scale`, undefined, [outF])),
        };
      } else {
        L = { kind: 'dynamic', inF, outF, q, weightScale: f64(await read(`${m}._layer.matmul.weight_scale`, undefined, [outF])) };
      }
      layers.set(hf, L);
      const rowScale = L.kind === 'static' ? L.dequantScale : L.weightScale;
      weights.set(`${hf}.weight`, Float64Array.from(q, (v, i) => v * rowScale[Math.floor(i / inF)]!));
    }
  } finally {
    await ckpt.close();
  }

  const linear: LinearHook = (name, x, inF, outF, T) => {
    const L = layers.get(name);
    if (!L) return undefined;
    if (inF !== L.inF || outF !== L.outF) throw new RangeError(`${name}: called as ${inF} → ${outF}; the folder's layer is ${L.inF} → ${L.outF}`);
    const y = new Float64Array(T * outF);
    const qx = new Float64Array(inF);
    for (let t = 0; t < T; t++) {
      let rowScale = 1;
      if (L.kind === 'static') {
        for (let k = 0; k < inF; k++) qx[k] = clampI8(roundHalfEven(x[t * inF + k]! / L.inputScale[k]! + L.inputZp[k]!));
      } else {
        let max = 0;
        for (let k = 0; k < inF; k++) max = Math.max(max, Math.abs(x[t * inF + k]!));
        rowScale = max / 127;
        for (let k = 0; k < inF; k++) qx[k] = max === 0 ? 0 : clampI8(roundHalfEven(x[t * inF + k]! / rowScale));
      }
      for (let n = 0; n < outF; n++) {
        let acc = 0;
        for (let k = 0; k < inF; k++) acc += qx[k]! * L.q[n * inF + k]!;
        y[t * outF + n] = L.kind === 'static' ? (acc + L.quantBias[n]!) * L.dequantScale[n]! : rowScale * L.weightScale[n]! * acc;
      }
    }
    return y;
  };
  return {
    config,
    weights: (name) => {
      const w = weights.get(name);
      if (!w) throw new RangeError(`loadGoldenStickCheckpoint: tensor "${name}" is not in ${dir}`);
      return w;
    },
    layers,
    linear,
  };
}

/** A Qwen3Reference that runs the Golden Stick folder `dir` as the file says (see loadGoldenStickCheckpoint). */
export async function loadGoldenStickReference(dir: string): Promise<Qwen3Reference> {
  const c = await loadGoldenStickCheckpoint(dir);
  return new Qwen3Reference(c.config, c.weights, { linear: c.linear });
}
