/**
 * SmoothQuant for one decoder layer, from the ranges its linear inputs took during calibration:
 *   1. smoothing (outliersSuppression 'smooth'): for each mapping, one factor per input channel
 *      s = clamp(amax^α / wmax^(1−α), 1e-5), wmax over all linears of the mapping; W ← W·diag(s), and 1/s folded
 *      into the norm before them (norm ← norm / s) or the rows of the linear producing their input (v_proj → o_proj),
 *      so the checkpoint is plain compressed-tensors and the runtime does no extra multiply;
 *   2. weights: per output channel symmetric int8, scale = 2·absmax/255;
 *   3. activations: per_tensor → static asymmetric scale and zero point from the smoothed input's min and max;
 *      per_token → nothing stored (dynamic at run time).
 */
import { toFloat32, type HostTensor, type LinearSpec, type SmoothMapping, type TensorSource } from '@qllm/core';
import type { ChannelRange } from './layer-session.js';
import type { LayerConfig } from './ptq-config.js';
import { columnAbsMax, quantizeWeightPerChannel, smoothingFactors, staticActivationParams } from './quant-math.js';

export type LinearScheme = 'static' | 'dynamic' | 'float';

export interface QuantizedLayer {
  /** New or replaced tensors: int8 weights, scales, zero points, smoothed norms. */
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
}

export async function quantizeLayer(input: QuantizeLayerInput): Promise<QuantizedLayer> {
  const { checkpoint, linears, mappings, configFor, ranges } = input;
  const out: QuantizedLayer = { tensors: new Map(), schemes: new Map(), smoothing: new Map(), warnings: [] };
  const weights = new Map<string, Float32Array>();
  const inputRange = new Map<string, ChannelRange>();
  for (const l of linears) {
    if (!configFor(l).quantize) continue;
    weights.set(l.name, toFloat32(await checkpoint.read(`${l.name}.weight`)).slice());
    const r = ranges.get(l.name);
    if (!r) throw new Error(`no calibration statistics for ${l.name}`);
    inputRange.set(l.name, { min: r.min.slice(), max: r.max.slice() });
  }

  const smoothed = new Set<string>();
  for (const mapping of mappings) {
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
    if (config.outliersSuppression === 'smooth' && !smoothed.has(l.name)) {
      out.warnings.push(`${l.name}: no norm feeds it directly, so its smoothing factor cannot be folded on the 'cpu' target; quantized unsmoothed`);
    }
    const { q, scale } = quantizeWeightPerChannel(weights.get(l.name)!, l.outFeatures, l.inFeatures);
    out.tensors.set(`${l.name}.weight`, { dtype: 'I8', shape: [l.outFeatures, l.inFeatures], data: q });
    out.tensors.set(`${l.name}.weight_scale`, { dtype: 'F32', shape: [l.outFeatures, 1], data: scale });
    if (config.actQuantGranularity === 'per_token') {
      out.schemes.set(l.name, 'dynamic');
      continue;
    }
    const r = inputRange.get(l.name)!;
    let min = Infinity;
    let max = -Infinity;
    for (let k = 0; k < r.min.length; k++) {
      min = Math.min(min, r.min[k]!);
      max = Math.max(max, r.max[k]!);
    }
    const p = staticActivationParams(min, max);
    out.tensors.set(`${l.name}.input_scale`, { dtype: 'F32', shape: [1], data: Float32Array.of(p.scale) });
    out.tensors.set(`${l.name}.input_zero_point`, { dtype: 'I8', shape: [1], data: Int8Array.of(p.zeroPoint) });
    out.schemes.set(l.name, 'static');
  }
  return out;
}
