/**
 * The checkpoint format: config.json's `quantization_config`, and per quantized linear `<name>.weight` int8
 * [out, in] plus `<name>.weight_scale` float32 [out] (symmetric, per output channel, no zero point):
 *   W ≈ q · s,  q = clamp(round(W / s), −127, 127),  s[n] = max_k |W[n, k]| / 127.
 * Linears listed in `ignore` (always the head) keep their float weight.
 */
import { ConfigError, showJson } from '@qllm/core';

export const QUANT_METHOD = 'weight-only-int8-rtn';

export interface WeightOnlyInt8Config {
  quant_method: typeof QUANT_METHOD;
  bits: 8;
  group: 'per-channel';
  symmetric: true;
  /** Linear layers (as the architecture names them, e.g. 'lm_head') that stay float. */
  ignore: string[];
}

export function buildQuantizationConfig(ignore: string[]): WeightOnlyInt8Config {
  return { quant_method: QUANT_METHOD, bits: 8, group: 'per-channel', symmetric: true, ignore };
}

/** Whether config.json's quantization_config was written by this method (field errors come later, from parse). */
export function isWeightOnlyInt8Config(raw: Record<string, unknown>): boolean {
  return raw.quant_method === QUANT_METHOD;
}

/** Validates a recognised quantization_config; a ConfigError names the field. */
export function parseQuantizationConfig(raw: Record<string, unknown>): WeightOnlyInt8Config {
  const where = `config.json quantization_config (quant_method '${QUANT_METHOD}')`;
  const expect = (field: string, ok: boolean, wanted: string) => {
    if (!ok) throw new ConfigError(`${where}: '${field}' must be ${wanted}, got ${showJson(raw[field])}`);
  };
  expect('quant_method', raw.quant_method === QUANT_METHOD, `'${QUANT_METHOD}'`);
  expect('bits', raw.bits === 8, '8');
  expect('group', raw.group === 'per-channel', "'per-channel'");
  expect('symmetric', raw.symmetric === undefined || raw.symmetric === true, 'true');
  const ignore = raw.ignore ?? [];
  expect('ignore', Array.isArray(ignore) && ignore.every((n) => typeof n === 'string'), 'an array of layer names');
  return buildQuantizationConfig(ignore as string[]);
}
