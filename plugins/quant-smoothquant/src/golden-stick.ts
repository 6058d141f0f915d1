/**
 * The Golden Stick / MindFormers checkpoint layout (the 'ascend' target), written and read
 * (reference/golden-stick.md §2–§4). Per quantized linear, `<m>` its MindFormers module (the architecture's name
 * table: `model.layers.{i}.attention.wq`, `….feed_forward.w2`, …):
 *
 *   static (SmoothQuant, per-tensor asymmetric activations fused with per-channel smoothing):
 *     <m>._layer.weight                 int8    [oc, ic]
 *     <m>._layer.matmul.dequant_scale   float32 [oc]    fp32(x_scale)·fp32(w_scale[n])
 *     <m>._layer.matmul.quant_bias      int32   [oc]    round(bf16(−x_zp·Σ_k qW[n,k]·deq[n]) / fp32(deq[n]))
 *     <m>.quant_op.input_scale          bf16    [ic]    fp16(x_scale) / fp16(1/s[k]), computed in float16
 *     <m>.quant_op.input_zp             int8    [ic]    x_zp tiled
 *   dynamic per token (w2):
 *     <m>._layer.weight                 int8    [oc, ic]
 *     <m>._layer.matmul.weight_scale    bf16    [oc]
 *   float tensors under their MindFormers names; `quantization_description.json` beside them.
 *
 * Runtime math (QuantV2 + QuantBatchMatmul): qx = clamp(round(x/input_scale[k] + input_zp[k]), −128, 127),
 * y[n] = (Σ_k qx·qW[n,k] + quant_bias[n])·dequant_scale[n]; dynamic: s_t = max|x_t|/127, y = s_t·w_scale[n]·Σ q·qW.
 *
 * Where the reference is ambiguous, and what this file does:
 *  1. Float tensors keep the source checkpoint's dtype (bf16 for a bf16 model; Golden Stick saves its compute dtype).
 *  2. Tied embeddings: no `lm_head.weight` (MindFormers shares the parameter, saved once under the embedding's
 *     name); an untied model's head is written as `lm_head.weight`. lm_head is never quantized (outside the layers).
 *  3. quantization_description.json: one key per tensor written (MindFormers names), "W8A8" for every tensor of a
 *     static linear, "W8A8_DYNAMIC" for a per-token one, "FLOAT" for the rest (the reference gives only the value set).
 *  4. config.json is the float model's, unchanged (Golden Stick writes no quantization config; vLLM-MindSpore takes the
 *     method from its `quantization` argument and the description file); tokenizer and generation files are copied,
 *     and qllm's fidelity.json is written beside them.
 *  5. Files: Hugging Face-style shards (`model-0000i-of-0000n.safetensors`, one per decoder layer plus one for the
 *     rest) and `model.safetensors.index.json` at the folder root — not Golden Stick's single file under `rank_0/`.
 *  6. The activation range is widened to contain 0 before x_scale/x_zp (as the 'cpu' target): Golden Stick's x_zp
 *     overflows int8 for an all-positive range; for ranges straddling 0 (every real one) nothing changes.
 *  7. Weights: w_scale = 2·absmax/255 and qW = round_half_even(W̃/w_scale) in float64. Golden Stick casts W̃ = W·s back
 *     to bf16 and divides in bf16 (rounding the quotient to 8 significant bits first, ±1 on some q); here W̃ stays
 *     float32/64 — it is only an intermediate, and that extra rounding costs fidelity (the outlier model's mean KL
 *     5.4e-2 with it, 4.4e-2 without; 'cpu' target 3.2e-2).
 *  8. input_scale goes through float16 as the reference says (fp16(x_scale)/fp16(1/s), rounded to fp16, stored
 *     bf16), and the weight is smoothed by the factor that stored value really applies, s_eff = input_scale/x_scale
 *     (within 2⁻⁹ of s), so activations and weights agree; Golden Stick smooths by s and lives with the mismatch.
 *     Where fp16(1/s) overflows (s < ~1.5e-5) or the quotient is 0 or infinite, x_scale·s is computed in float64,
 *     with a warning (Golden Stick would store 0 or inf). Likewise w2 is quantized with its bf16-rounded weight_scale.
 *  9. quant_bias: the float64 product q_corr·deq is rounded to float32 then bf16; divided by fp32(deq) in float32;
 *     rounded half to even to int32.
 * 10. dequant_scale is float32 (bf16 compute dtype); the fp16 model's int64 form is not written.
 * 11. w2's weight_scale: 2·absmax/255 rounded to bf16 (through float32), and the weight quantized with that value.
 * 12. input_zp is x_zp tiled to int8 [ic]; the reader also runs a non-uniform input_zp (a float add before rounding).
 * 13. Per-token layers get no smoothing (Golden Stick's dynamic path has no smooth scale); a policy asking for both
 *     gets a warning. A static layer under outliersSuppression 'none' gets s = 1 (input_scale = x_scale tiled).
 * 14. A float (blacklisted) decoder linear is written as `<m>.weight` in the source dtype, "FLOAT".
 * 15. QuantV2's scale is a divisor (the default INTERNAL kernel with an int8 offset), rounding half to even; the
 *     ACLNN form (storing 1/scale) is not written or recognised.
 * 16. Layer policies match Hugging Face layer names (`model.layers.3.mlp.down_proj`), not Golden Stick's
 *     `network.model.layers.3.feed_forward.w2`.
 * 17. A folder is recognised as Golden Stick's when config.json has no quantization_config and some linear's
 *     `<m>._layer.weight` (or quantization_description.json) is there; each linear's scheme comes from which tensors
 *     exist (input_scale → static, weight_scale → dynamic, `.weight` → float). The description file is optional
 *     (the older saver writes none).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  CheckpointError, f32ToBf16, type CheckpointFolderV1, type HostTensor, type LinearContextV1, type LinearMethodV1, type LinearSpec,
  type ModelArchitectureV1, type ModelConfigV1, type RecognizedCheckpointV1, type TensorInfo, type TensorSource,
} from '@qllm/core';
import { goldenStickStatic } from './golden-stick-math.js';
import { int8WeightT, readFloat } from './int8-linear.js';
import { NameTable } from './name-table.js';
import type { LinearScheme, QuantizedLinear } from './quantize-layer.js';

/** Golden Stick's tensor suffixes after a linear's MindFormers module name: the one place they are spelled. */
export const GOLDEN_STICK_SUFFIX = {
  weight: '._layer.weight',
  dequantScale: '._layer.matmul.dequant_scale',
  quantBias: '._layer.matmul.quant_bias',
  inputScale: '.quant_op.input_scale',
  inputZp: '.quant_op.input_zp',
  weightScale: '._layer.matmul.weight_scale',
  floatWeight: '.weight',
} as const;

export const DESCRIPTION_FILE = 'quantization_description.json';

export type DescriptionValue = 'W8A8' | 'W8A8_DYNAMIC' | 'FLOAT';

const S = GOLDEN_STICK_SUFFIX;

/** The tensors of one quantized linear under module `m`. */
export function goldenStickLinearTensors(q: QuantizedLinear, m: string): Map<string, HostTensor> {
  const { outFeatures: oc, inFeatures: ic } = q.spec;
  const tensors = new Map<string, HostTensor>();
  tensors.set(`${m}${S.weight}`, { dtype: 'I8', shape: [oc, ic], data: q.weight });
  if (q.scheme === 'dynamic') {
    tensors.set(`${m}${S.weightScale}`, { dtype: 'BF16', shape: [oc], data: f32ToBf16(Float32Array.from(q.weightScale)) });
    return tensors;
  }
  const p = goldenStickStatic(q.weight, q.weightScale, oc, ic, q.activation!, q.smoothing);
  tensors.set(`${m}${S.dequantScale}`, { dtype: 'F32', shape: [oc], data: p.dequantScale });
  tensors.set(`${m}${S.quantBias}`, { dtype: 'I32', shape: [oc], data: p.quantBias });
  tensors.set(`${m}${S.inputScale}`, { dtype: 'BF16', shape: [ic], data: f32ToBf16(p.inputScale) });
  tensors.set(`${m}${S.inputZp}`, { dtype: 'I8', shape: [ic], data: p.inputZp });
  return tensors;
}

export function descriptionValue(scheme: LinearScheme): DescriptionValue {
  return scheme === 'static' ? 'W8A8' : scheme === 'dynamic' ? 'W8A8_DYNAMIC' : 'FLOAT';
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

/** One linear of a Golden Stick folder, as recognition found it. */
export interface GoldenStickLinear {
  scheme: LinearScheme;
  /** The MindFormers module name. */
  module: string;
  /** Static: the zero point when input_zp holds one value throughout (Golden Stick's), null when it varies. */
  zeroPoint?: number | null;
}

/** What recognition hands getLinearMethod in place of config.json's quantization_config. */
export interface GoldenStickConfig {
  quant_method: 'golden-stick';
  /** By HF linear name. */
  linears: Record<string, GoldenStickLinear>;
  /** quantization_description.json, when the folder has one. */
  description?: Record<string, string>;
}

export function isGoldenStickConfig(raw: Record<string, unknown> | undefined): raw is GoldenStickConfig & Record<string, unknown> {
  return raw?.quant_method === 'golden-stick' && typeof raw.linears === 'object';
}

/** A checkpoint read under other names: `renames` maps a presented name to the stored one; others pass through. */
export class RenamedSource implements TensorSource {
  private readonly presented = new Map<string, string>();

  constructor(private readonly base: TensorSource, private readonly renames: ReadonlyMap<string, string>) {
    for (const [shown, stored] of renames) this.presented.set(stored, shown);
  }

  names(): string[] {
    return this.base.names().map((n) => this.presented.get(n) ?? n);
  }

  has(name: string): boolean {
    return this.base.has(this.renames.get(name) ?? name);
  }

  info(name: string): TensorInfo {
    return { ...this.base.info(this.renames.get(name) ?? name), name };
  }

  read(name: string): Promise<HostTensor> {
    return this.base.read(this.renames.get(name) ?? name);
  }
}

async function readDescription(dir: string): Promise<Record<string, string> | undefined> {
  const file = path.join(dir, DESCRIPTION_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CheckpointError(`${file}: expected an object { tensor name: "W8A8" | "W8A8_DYNAMIC" | "FLOAT" }`, file, '');
  return parsed as Record<string, string>;
}

/**
 * Recognise a Golden Stick folder by its tensor names (and quantization_description.json): the scheme of every
 * linear, and the checkpoint presented under the architecture's HF names. Undefined when it is not one.
 */
export async function recognizeGoldenStick(
  folder: CheckpointFolderV1,
  model: { architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1 },
): Promise<RecognizedCheckpointV1 | undefined> {
  if (!model.architecture.tensorNames) return undefined;
  const table = NameTable.of(model.architecture, model.config);
  const ck = folder.checkpoint;
  const description = await readDescription(folder.dir);
  if (!description && !table.linears().some((e) => ck.has(`${e.mindformers}${S.weight}`))) return undefined;

  const renames = new Map<string, string>();
  const linears: Record<string, GoldenStickLinear> = {};
  const missing: string[] = [];
  for (const e of table.entries) {
    if (e.kind === 'tensor') {
      if (ck.has(e.mindformers)) renames.set(e.hf, e.mindformers);
      continue;
    }
    const m = e.mindformers;
    if (ck.has(`${m}${S.weight}`)) {
      renames.set(`${e.hf}.weight`, `${m}${S.weight}`);
      if (ck.has(`${m}${S.inputScale}`)) {
        for (const s of [S.inputZp, S.quantBias, S.dequantScale]) if (!ck.has(`${m}${s}`)) missing.push(`${m}${s}`);
        linears[e.hf] = { scheme: 'static', module: m, zeroPoint: ck.has(`${m}${S.inputZp}`) ? uniformValue(await ck.read(`${m}${S.inputZp}`)) : null };
      } else if (ck.has(`${m}${S.weightScale}`)) {
        linears[e.hf] = { scheme: 'dynamic', module: m };
      } else {
        missing.push(`${m}${S.inputScale} or ${m}${S.weightScale}`);
      }
    } else if (ck.has(`${m}${S.floatWeight}`)) {
      renames.set(`${e.hf}.weight`, `${m}${S.floatWeight}`);
      linears[e.hf] = { scheme: 'float', module: m };
    }
    // Neither: a tied head (the embedding), or a missing tensor the loader's shape check names.
  }
  if (missing.length) {
    throw new CheckpointError(`${folder.dir}: a Golden Stick checkpoint, but these tensors are missing: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`, folder.dir, missing[0]!);
  }
  const config: GoldenStickConfig = { quant_method: 'golden-stick', linears, ...(description && { description }) };
  return { layout: 'golden-stick', quantizationConfig: config as unknown as Record<string, unknown>, checkpoint: new RenamedSource(ck, renames) };
}

/** The single value of an int8 tensor, or null when its values differ. */
function uniformValue(t: HostTensor): number | null {
  const v = t.data as Int8Array;
  const first = v[0] ?? 0;
  for (let i = 1; i < v.length; i++) if (v[i] !== first) return null;
  return first;
}

function checkShape(ctx: LinearContextV1, name: string, dtype: string, shape: number[]): void {
  const info = ctx.checkpoint.info(name);
  if (info.dtype !== dtype || info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new CheckpointError(
      `${info.file}: tensor '${name}' is ${info.dtype} [${info.shape.join(', ')}], expected ${dtype} [${shape.join(', ')}] (Golden Stick layout)`, info.file, name,
    );
  }
}

/**
 * A static Golden Stick linear, exact to its math: the per-channel input scale is a float Div before a per-tensor
 * QuantizeLinear (scale 1, zero point x_zp), so q = clamp(round(x/input_scale[k]) + x_zp) as QuantV2; the int8 GEMM
 * computes deq[n]·Σ_k (q − x_zp)·qW, and the rest of the integer sum, (quant_bias[n] + x_zp·Σ_k qW[n,k])·deq[n],
 * is added as a float bias. A non-uniform input_zp is added per channel before rounding instead (zero point 0).
 */
export function goldenStickStaticLinear(module: string, zeroPoint: number | null): LinearMethodV1 {
  return {
    apply(ctx, layer, x) {
      const { g } = ctx;
      const { inFeatures: ic, outFeatures: oc } = layer;
      const n = (s: string) => `${module}${s}`;
      checkShape(ctx, n(S.inputScale), ctx.checkpoint.info(n(S.inputScale)).dtype, [ic]);
      checkShape(ctx, n(S.inputZp), 'I8', [ic]);
      checkShape(ctx, n(S.quantBias), 'I32', [oc]);
      checkShape(ctx, n(S.dequantScale), ctx.checkpoint.info(n(S.dequantScale)).dtype, [oc]);
      const inputScale = g.initializer(n(S.inputScale), 'float32', [ic], () => readFloat(ctx, n(S.inputScale), ic));
      const deq = g.initializer(n(S.dequantScale), 'float32', [oc], () => readFloat(ctx, n(S.dequantScale), oc));
      let scaled = g.op('Div', [x, inputScale]);
      if (zeroPoint === null) {
        const zp = g.initializer(`${n(S.inputZp)}.f32`, 'float32', [ic], async () => Float32Array.from((await ctx.checkpoint.read(n(S.inputZp))).data as Int8Array));
        scaled = g.op('Add', [scaled, zp]);
      }
      const z = zeroPoint ?? 0;
      const weight = int8WeightT(ctx, layer, n(S.weight));
      const y = ctx.int8MatMul({
        x: scaled,
        activation: { scale: g.scalar(1), zeroPoint: { name: n(S.inputZp), value: async () => z } },
        weight,
        weightScale: deq,
      });
      const bias = g.initializer(`${n(S.quantBias)}.float`, 'float32', [oc], async () => {
        const qw = (await ctx.checkpoint.read(n(S.weight))).data as Int8Array;
        const qb = (await ctx.checkpoint.read(n(S.quantBias))).data as Int32Array;
        const d = await readFloat(ctx, n(S.dequantScale), oc);
        const out = new Float32Array(oc);
        for (let r = 0; r < oc; r++) {
          let sum = 0;
          for (let k = 0; k < ic; k++) sum += qw[r * ic + k]!;
          out[r] = (qb[r]! + z * sum) * d[r]!;
        }
        return out;
      });
      return g.op('Add', [y, bias]);
    },
  };
}

/** A dynamic per-token Golden Stick linear (w2): y = s_t·weight_scale[n]·Σ_k q·qW. */
export function goldenStickDynamicLinear(module: string): LinearMethodV1 {
  return {
    apply(ctx, layer, x) {
      const name = `${module}${S.weightScale}`;
      checkShape(ctx, name, ctx.checkpoint.info(name).dtype, [layer.outFeatures]);
      const weightScale = ctx.g.initializer(name, 'float32', [layer.outFeatures], () => readFloat(ctx, name, layer.outFeatures));
      return ctx.int8MatMul({ x, activation: 'per-token', weight: int8WeightT(ctx, layer, `${module}${S.weight}`), weightScale });
    },
  };
}

/** The linear method for one layer of a recognised Golden Stick folder (null: float). */
export function goldenStickLinearMethod(config: GoldenStickConfig, layer: LinearSpec): LinearMethodV1 | null {
  const l = config.linears[layer.name];
  if (!l || l.scheme === 'float') return null;
  return l.scheme === 'static' ? goldenStickStaticLinear(l.module, l.zeroPoint ?? null) : goldenStickDynamicLinear(l.module);
}
