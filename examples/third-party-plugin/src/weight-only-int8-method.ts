import type { QuantizationMethodV1 } from '@qllm/core';
import { int8WeightLinear } from './int8-weight-linear.js';
import { isWeightOnlyInt8Config, parseQuantizationConfig, type WeightOnlyInt8Config } from './quantization-config.js';
import { quantizeWeightOnlyInt8 } from './quantize.js';

/** The name the README registers it under. */
export const WEIGHT_ONLY_INT8_RTN = 'WeightOnlyInt8RTN';

export interface WeightOnlyInt8MethodSettings {
  /** The method's name, as reported in `LoadedModel.quantization.name` (default 'WeightOnlyInt8RTN'). */
  name?: string;
}

/**
 * Weight-only int8, round-to-nearest (W8A16): a QuantizationMethodV1 built on @qllm/core's public API alone.
 * Offline it writes int8 weights with per-output-channel scales; online each quantized linear dequantizes its
 * int8 weight in the graph and multiplies in float.
 */
export function createWeightOnlyInt8Method(settings: WeightOnlyInt8MethodSettings = {}): QuantizationMethodV1 {
  const name = settings.name ?? WEIGHT_ONLY_INT8_RTN;
  const parsed = new WeakMap<Record<string, unknown>, WeightOnlyInt8Config>();
  const configOf = (raw: Record<string, unknown>) => {
    let c = parsed.get(raw);
    if (!c) parsed.set(raw, (c = parseQuantizationConfig(raw)));
    return c;
  };
  return {
    specificationVersion: 'v1',
    name,
    recognizes: isWeightOnlyInt8Config,
    getLinearMethod(layer, model) {
      if (!model.quantizationConfig) return null;
      // A layer reading another layer's tensor (a tied head) is never quantized; neither is one listed in `ignore`.
      if (layer.weight !== undefined || configOf(model.quantizationConfig).ignore.includes(layer.name)) return null;
      return int8WeightLinear;
    },
    quantize: (options) => quantizeWeightOnlyInt8(options, name),
  };
}

/** The default instance: `quantizationMethods.register(WEIGHT_ONLY_INT8_RTN, weightOnlyInt8)`. */
export const weightOnlyInt8 = createWeightOnlyInt8Method();
