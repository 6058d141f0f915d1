import type { QuantizationMethodV1 } from '@qllm/core';
import { isW8A8Config, parseCompressedTensorsConfig, schemeForLayer, type CompressedTensorsConfig } from './compressed-tensors.js';
import { goldenStickLinearMethod, isGoldenStickConfig, recognizeGoldenStick } from './golden-stick.js';
import { dynamicPerTokenInt8Linear, staticInt8Linear } from './int8-linear.js';
import { quantize } from './quantize.js';
import type { LinearScheme } from './quantize-layer.js';

export interface SmoothQuantMethodSettings {
  /** The name it registers under (default 'SmoothQuant'). */
  name?: string;
}

/**
 * SmoothQuant's online half: recognises its two checkpoint layouts — compressed-tensors int-quantized W8A8 (the
 * 'cpu' target's, which llm-compressor also writes; from config.json) and Golden Stick's MindFormers layout (the
 * 'ascend' target's; by its tensor names) — parses the layout's config once, and lowers each quantized linear to
 * int8 onnxruntime ops through `ctx.int8MatMul`.
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
    recognizeFolder: recognizeGoldenStick,
    getLinearMethod(layer, model) {
      if (!model.quantizationConfig) return null;
      if (isGoldenStickConfig(model.quantizationConfig)) return goldenStickLinearMethod(model.quantizationConfig, layer);
      const scheme = schemeForLayer(config(model.quantizationConfig), layer.name);
      if (!scheme) return null;
      return scheme.kind === 'static' ? staticInt8Linear : dynamicPerTokenInt8Linear;
    },
    quantize,
  };
}

/** The default instance, registered as 'SmoothQuant' by qllm. */
export const smoothQuant = createSmoothQuantMethod();

/**
 * The scheme of each named linear under a checkpoint's quantization config — compressed-tensors' (config.json) or the
 * one Golden Stick recognition produces — for reports such as `qllm inspect`. Undefined for a config it does not read.
 */
export function linearSchemes(quantizationConfig: Record<string, unknown>, linearNames: readonly string[]): Map<string, LinearScheme> | undefined {
  if (isGoldenStickConfig(quantizationConfig)) {
    return new Map(linearNames.map((n) => [n, quantizationConfig.linears[n]?.scheme ?? 'float']));
  }
  if (!isW8A8Config(quantizationConfig)) return undefined;
  const c = parseCompressedTensorsConfig(quantizationConfig, 'config.json');
  return new Map(linearNames.map((n) => {
    const s = schemeForLayer(c, n);
    return [n, !s ? 'float' : s.kind === 'static' ? 'static' : 'dynamic'];
  }));
}
