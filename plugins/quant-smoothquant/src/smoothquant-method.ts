import type { QuantizationMethodV1 } from '@qllm/core';
import { isW8A8Config, parseCompressedTensorsConfig, schemeForLayer, type CompressedTensorsConfig } from './compressed-tensors.js';
import { dynamicPerTokenInt8Linear, staticInt8Linear } from './int8-linear.js';
import { quantize } from './quantize.js';

export interface SmoothQuantMethodSettings {
  /** The name it registers under (default 'SmoothQuant'). */
  name?: string;
}

/**
 * SmoothQuant's online half: recognises compressed-tensors int-quantized W8A8 checkpoints (the 'cpu' target's
 * layout, which llm-compressor also writes) and lowers each quantized linear to int8 onnxruntime ops.
 */
export function createSmoothQuantMethod(settings: SmoothQuantMethodSettings = {}): QuantizationMethodV1 {
  const parsed = new WeakMap<Record<string, unknown>, CompressedTensorsConfig>();
  const config = (raw: Record<string, unknown>) => {
    let c = parsed.get(raw);
    if (!c) parsed.set(raw, (c = parseCompressedTensorsConfig(raw, 'config.json')));
    return c;
  };
  return {
    specificationVersion: 'v1',
    name: settings.name ?? 'SmoothQuant',
    recognizes: isW8A8Config,
    getLinearMethod(layer, model) {
      if (!model.quantizationConfig) return null;
      const scheme = schemeForLayer(config(model.quantizationConfig), layer.name);
      if (!scheme) return null;
      return scheme.kind === 'static' ? staticInt8Linear : dynamicPerTokenInt8Linear;
    },
    quantize,
  };
}

/** The default instance, registered as 'SmoothQuant' by qllm. */
export const smoothQuant = createSmoothQuantMethod();
