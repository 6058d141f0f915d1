/**
 * SmoothQuant for one decoder layer, from the ranges its linear inputs took during calibration. The result is
 * layout-neutral (int8 weights, weight scales, smoothing factors, activation parameters per linear); a checkpoint
 * layout (compressed-tensors.ts, golden-stick.ts) names and writes it.
 *   1. smoothing (outliersSuppression 'smooth'), one factor per input channel s = clamp(amax^α / wmax^(1−α), 1e-5):
 *      - 'fold' (the 'cpu' target, compressed-tensors: no per-channel input scale): one s per mapping, wmax over
 *        all linears of the mapping; W ← W·diag(s), and 1/s folded into the norm before them (norm ← norm / s) or
 *        the rows of the linear producing their input (v_proj → o_proj), so the runtime does no extra multiply;
 *      - 'per-linear' (the 'ascend' target, Golden Stick): every smoothed linear its own s from its own weight,
 *        W ← cast(W·diag(s)) to the checkpoint dtype, and 1/s left to the layout (fused into a per-channel input scale);
 *   2. weights: per output channel symmetric int8, scale = 2·absmax/255;
 *   3. activations: per_tensor → static asymmetric scale and zero point from the smoothed input's min and max;
 *      per_token → nothing stored (dynamic at run time).
 */
import { toFloat32, type HostTensor, type LinearSpec, type SmoothMapping, type TensorSource } from '@qllm/core';
import type { ChannelRange } from './layer-session.js';
import type { LayerConfig } from './ptq-config.js';
import { goldenStickInputScale, quantizeWeightGoldenStick, toBf16 } from './golden-stick-math.js';
import { columnAbsMax, quantizeWeightPerChannel, smoothingFactors, staticActivationParams } from './quant-math.js';

export type LinearScheme = 'static' | 'dynamic' | 'float';

/** Where smoothing factors go: folded into norms / producer rows, or kept per linear for the layout to fuse. */
export type SmoothingPlacement = 'fold' | 'per-linear';

/** One quantized linear, layout-neutral. */
export interface QuantizedLinear {
  spec: LinearSpec;
  scheme: 'static' | 'dynamic';
  /** int8 [out, in], row-major. */
  weight: Int8Array;
  /** Per output channel, the scale the weight was quantized with (float32-exact for 'fold', float64 for 'per-linear'). */
  weightScale: Float64Array;
  /** 'per-linear' (static): the factors s the input is divided by, so that its scale per channel is activation.scale·s. */
  smoothing?: Float64Array;
  /** Static: per-tensor scale and zero point of the (smoothed) input. */
  activation?: { scale: number; zeroPoint: number };
}

export interface QuantizedLayer {
  /** The quantized linears by (HF) name. */
  linears: Map<string, QuantizedLinear>;
  /** Replaced float tensors (norms with smoothing folded in), by (HF) name. */
  tensors: Map<string, HostTensor>;
  schemes: Map<string, LinearScheme>;
  /** Smoothing factors applied, per norm (for reports and tests). */
  smoothing: Map<string, Float32Array>;
  warnings: string[];
}

export interface QuantizeLayerInput {
  checkpoint: TensorSource;
  linears: LinearSpec[];
  mappings: SmoothMapping[];
  configFor: (layer: LinearSpec) => LayerConfig;
  ranges: ReadonlyMap<string, ChannelRange>;
  /** Default 'fold'. */
  smoothing?: SmoothingPlacement;
}

export async function quantizeLayer(input: QuantizeLayerInput): Promise<QuantizedLayer> {
  const { checkpoint, linears, mappings, configFor, ranges } = input;
  const placement = input.smoothing ?? 'fold';
  const out: QuantizedLayer = { linears: new Map(), tensors: new Map(), schemes: new Map(), smoothing: new Map(), warnings: [] };
  const weights = new Map<string, Float32Array>();
  const inputRange = new Map<string, ChannelRange>();
  for (const l of linears) {
    if (!configFor(l).quantize) continue;
    const w = await checkpoint.read(l.weight ?? `${l.name}.weight`);
    weights.set(l.name, toFloat32(w).slice());
    const r = ranges.get(l.name);
    if (!r) throw new Error(`no calibration statistics for ${l.name}`);
    inputRange.set(l.name, { min: r.min.slice(), max: r.max.slice() });
  }

  const smoothed = new Set<string>();
  const perLinear = new Map<string, Float32Array>();
  if (placement === 'per-linear') {
    // Golden Stick: every smoothed linear its own s, from its own input range and weight (no folding).
    for (const l of linears) {
      const c = configFor(l);
      if (!c.quantize || c.outliersSuppression !== 'smooth') continue;
      if (c.actQuantGranularity === 'per_token') {
        out.warnings.push(`${l.name}: per-token activations have no input scale to fuse a smoothing factor into (Golden Stick's dynamic path has none); quantized unsmoothed`);
        continue;
      }
      const range = inputRange.get(l.name)!;
      const actAbsMax = range.min.map((mn, k) => Math.max(Math.abs(mn), Math.abs(range.max[k]!)));
      const s = smoothingFactors(actAbsMax, columnAbsMax(weights.get(l.name)!, l.outFeatures, l.inFeatures), c.alpha);
      // The weight is smoothed below, by the factors the stored input scale really applies.
      for (let k = 0; k < s.length; k++) {
        range.min[k] = range.min[k]! / s[k]!;
        range.max[k] = range.max[k]! / s[k]!;
      }
      perLinear.set(l.name, s);
      out.smoothing.set(l.name, s);
      smoothed.add(l.name);
    }
  }
  for (const mapping of placement === 'fold' ? mappings : []) {
    const group = mapping.linears;
    const where = 'norm' in mapping ? mapping.norm : mapping.producer.name;
    const configs = group.map(configFor);
    const smooth = configs.map((c) => c.quantize && c.outliersSuppression === 'smooth');
    if (!smooth.some(Boolean)) continue;
    if (!smooth.every(Boolean)) {
      out.warnings.push(`${where}: only some of ${group.map((l) => l.name).join(', ')} are to be smoothed, but they share one input; left unsmoothed`);
      continue;
    }
    const alpha = configs[0]!.alpha;
    if (configs.some((c) => c.alpha !== alpha)) out.warnings.push(`${where}: the linears it feeds ask for different alphas; using ${alpha}`);
    const range = inputRange.get(group[0]!.name)!;
    const actAbsMax = range.min.map((mn, k) => Math.max(Math.abs(mn), Math.abs(range.max[k]!)));
    const wAbsMax = new Float32Array(actAbsMax.length);
    for (const l of group) {
      const col = columnAbsMax(weights.get(l.name)!, l.outFeatures, l.inFeatures);
      for (let k = 0; k < col.length; k++) wAbsMax[k] = Math.max(wAbsMax[k]!, col[k]!);
    }
    let s: Float32Array;
    if ('norm' in mapping) {
      s = smoothingFactors(actAbsMax, wAbsMax, alpha);
      const normWeight = toFloat32(await checkpoint.read(mapping.norm)).map((v, k) => v / s[k]!);
      out.tensors.set(mapping.norm, { dtype: 'F32', shape: [normWeight.length], data: normWeight });
    } else {
      const { producer, producerChannel } = mapping;
      const pw = weights.get(producer.name);
      if (!pw) {
        out.warnings.push(`${producer.name} is not quantized, so ${group.map((l) => l.name).join(', ')} cannot be smoothed through it; left unsmoothed`);
        continue;
      }
      // Channels fed by one producer row share its factor: reduce the statistics per producer channel.
      const actP = new Float32Array(producer.outFeatures);
      const wP = new Float32Array(producer.outFeatures);
      for (let c = 0; c < actAbsMax.length; c++) {
        const p = producerChannel(c);
        actP[p] = Math.max(actP[p]!, actAbsMax[c]!);
        wP[p] = Math.max(wP[p]!, wAbsMax[c]!);
      }
      const sP = smoothingFactors(actP, wP, alpha);
      s = Float32Array.from(actAbsMax, (_, c) => sP[producerChannel(c)]!);
      for (let p = 0; p < producer.outFeatures; p++) {
        for (let k = 0; k < producer.inFeatures; k++) pw[p * producer.inFeatures + k]! /= sP[p]!;
      }
    }
    for (const l of group) {
      const w = weights.get(l.name)!;
      for (let n = 0; n < l.outFeatures; n++) for (let k = 0; k < l.inFeatures; k++) w[n * l.inFeatures + k]! *= s[k]!;
      const r = inputRange.get(l.name)!;
      for (let k = 0; k < s.length; k++) {
        r.min[k] = r.min[k]! / s[k]!;
        r.max[k] = r.max[k]! / s[k]!;
      }
      smoothed.add(l.name);
    }
    out.smoothing.set(where, s);
  }

  for (const l of linears) {
    const config = configFor(l);
    if (!config.quantize) {
      out.schemes.set(l.name, 'float');
      continue;
    }
    if (placement === 'fold' && config.outliersSuppression === 'smooth' && !smoothed.has(l.name)) {
      out.warnings.push(`${l.name}: no norm feeds it directly, so its smoothing factor cannot be folded on the 'cpu' target; quantized unsmoothed`);
    }
    const w = weights.get(l.name)!;
    if (placement === 'fold') {
      const { q, scale } = quantizeWeightPerChannel(w, l.outFeatures, l.inFeatures);
      const ql: QuantizedLinear = { spec: l, scheme: 'dynamic', weight: q, weightScale: Float64Array.from(scale) };
      out.linears.set(l.name, ql);
      if (config.actQuantGranularity === 'per_token') {
        out.schemes.set(l.name, 'dynamic');
        continue;
      }
      ql.scheme = 'static';
      ql.activation = staticActivationParams(...tensorRange(inputRange.get(l.name)!));
      out.schemes.set(l.name, 'static');
      continue;
    }
    // Golden Stick (per-linear): the input scale x_scale·s is computed in float16 and stored in bf16; the weight is
    // smoothed by the factors that stored scale applies, s_eff = input_scale / x_scale (within 2⁻⁹ of s), so the
    // activation and weight sides agree. w2's bf16 weight scale is likewise the one it is quantized with.
    if (config.actQuantGranularity === 'per_token') {
      const { q, scale } = quantizeWeightGoldenStick(w, l.outFeatures, l.inFeatures, toBf16);
      out.linears.set(l.name, { spec: l, scheme: 'dynamic', weight: q, weightScale: scale });
      out.schemes.set(l.name, 'dynamic');
      continue;
    }
    const activation = staticActivationParams(...tensorRange(inputRange.get(l.name)!));
    const { inputScale, fp16Fallback } = goldenStickInputScale(activation.scale, perLinear.get(l.name), l.inFeatures);
    if (fp16Fallback) out.warnings.push(`${l.name}: the float16 input scale x_scale·s over- or underflows on ${fp16Fallback} channels; computed in float64`);
    const xScale = Math.fround(activation.scale);
    const sEff = Float64Array.from(inputScale, (v) => v / xScale);
    // Not cast back to bf16 as Golden Stick does (its smoothed weight lives in a bf16 parameter): the product is
    // only an intermediate here, and the extra rounding costs fidelity (the outlier model's mean KL ×1.2).
    const smoothedW = w.map((v, i) => v * sEff[i % l.inFeatures]!);
    const { q, scale } = quantizeWeightGoldenStick(smoothedW, l.outFeatures, l.inFeatures);
    out.linears.set(l.name, { spec: l, scheme: 'static', weight: q, weightScale: scale, smoothing: sEff, activation });
    out.schemes.set(l.name, 'static');
  }
  return out;
}

/** The smallest and largest value over all channels. */
function tensorRange(r: ChannelRange): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let k = 0; k < r.min.length; k++) {
    min = Math.min(min, r.min[k]!);
    max = Math.max(max, r.max[k]!);
  }
  return [min, max];
}
