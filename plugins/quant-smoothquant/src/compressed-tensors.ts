/**
 * The compressed-tensors `int-quantized` W8A8 layout (what llm-compressor writes and vLLM serves):
 * `quantization_config` in config.json, and per linear `weight` int8 [out, in], `weight_scale` [out, 1],
 * plus `input_scale` [1] (and `input_zero_point` [1] when asymmetric) for static activation schemes.
 */
import { z } from 'zod';
import { ConfigError, parseWithSchema } from '@qllm/core';
import { compileSafeRegex } from './safe-regex.js';

/** compressed-tensors' tensor suffixes after a linear's HF module name: the one place they are spelled. */
export const COMPRESSED_TENSORS_SUFFIX = {
  weight: '.weight',
  weightScale: '.weight_scale',
  inputScale: '.input_scale',
  inputZeroPoint: '.input_zero_point',
} as const;

const quantArgs = z.object({
  num_bits: z.literal(8),
  type: z.literal('int'),
  symmetric: z.boolean(),
  strategy: z.enum(['tensor', 'channel', 'token']),
  dynamic: z.boolean(),
  group_size: z.null().optional(),
}).passthrough();

const group = z.object({
  targets: z.array(z.string()).min(1),
  weights: quantArgs.extend({ strategy: z.literal('channel'), symmetric: z.literal(true), dynamic: z.literal(false) }),
  input_activations: quantArgs.nullable(),
  output_activations: z.null().optional(),
}).passthrough();

const schema = z.object({
  quant_method: z.literal('compressed-tensors'),
  format: z.literal('int-quantized'),
  // Group names are free-form: read into a Map so that one named '__proto__' is neither dropped nor a prototype.
  config_groups: z.preprocess(
    (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? new Map(Object.entries(v)) : v),
    z.map(z.string(), group, { error: (issue) => (issue.code === 'invalid_type' ? 'expected an object { group name: group }' : undefined) }),
  ),
  ignore: z.array(z.string()).default([]),
}).passthrough();

export type CompressedTensorsConfig = z.output<typeof schema>;
export type ConfigGroup = z.output<typeof group>;

/** The activation scheme of one linear layer. */
export type ActivationScheme =
  | { kind: 'static'; symmetric: boolean } // per-tensor, scale (and zero point) in the checkpoint
  | { kind: 'dynamic-per-token' }; // symmetric, computed per row at run time

export function isW8A8Config(raw: Record<string, unknown>): boolean {
  const parsed = schema.safeParse(raw);
  return parsed.success && [...parsed.data.config_groups.values()].every((g) => schemeOf(g) !== undefined);
}

export function parseCompressedTensorsConfig(raw: unknown, source: string): CompressedTensorsConfig {
  return parseWithSchema(schema, raw, `${source} quantization_config`);
}

function schemeOf(g: ConfigGroup): ActivationScheme | undefined {
  const a = g.input_activations;
  if (!a) return undefined; // weight-only: not W8A8
  if (!a.dynamic && a.strategy === 'tensor') return { kind: 'static', symmetric: a.symmetric };
  if (a.dynamic && a.strategy === 'token' && a.symmetric) return { kind: 'dynamic-per-token' };
  return undefined;
}

/**
 * compressed-tensors / vLLM target matching: an exact name, 're:<regex>' (Python re.match: anchored at the start),
 * or the class name 'Linear'. The regex comes from a checkpoint's config.json, so it runs on the linear-time engine.
 */
export function matchesTarget(target: string, layerName: string): boolean {
  if (target === 'Linear' || target === layerName) return true;
  if (!target.startsWith('re:')) return false;
  let re;
  try {
    re = compileSafeRegex(target.slice(3));
  } catch (e) {
    const shown = target.length > 100 ? `${target.slice(0, 100)}…` : target;
    throw new ConfigError(`quantization_config target '${shown}': invalid regular expression — ${(e as Error).message}`);
  }
  return re.matchesStart(layerName);
}

/** The scheme for a linear layer, or undefined when it is ignored or matched by no group. */
export function schemeForLayer(config: CompressedTensorsConfig, layerName: string): ActivationScheme | undefined {
  if (config.ignore.some((t) => matchesTarget(t, layerName))) return undefined;
  // Exact names and regexes take precedence over the class name, as in compressed-tensors.
  const groups = [...config.config_groups.values()];
  const specific = groups.find((g) => g.targets.some((t) => t !== 'Linear' && matchesTarget(t, layerName)));
  const matched = specific ?? groups.find((g) => g.targets.includes('Linear'));
  return matched ? schemeOf(matched) : undefined;
}

const WEIGHTS = { num_bits: 8, type: 'int', symmetric: true, strategy: 'channel', dynamic: false, group_size: null, observer: 'minmax', observer_kwargs: {}, actorder: null, block_structure: null };
const STATIC_INPUT = { num_bits: 8, type: 'int', symmetric: false, strategy: 'tensor', dynamic: false, group_size: null, observer: 'minmax', observer_kwargs: {}, actorder: null, block_structure: null };
const DYNAMIC_INPUT = { num_bits: 8, type: 'int', symmetric: true, strategy: 'token', dynamic: true, group_size: null, observer: null, observer_kwargs: {}, actorder: null, block_structure: null };

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Targets for a set of layer names: one `re:` pattern per position in the decoder layer (e.g. every
 * `model.layers.N.self_attn.q_proj`) when all layers at that position share the scheme, exact names otherwise.
 */
function compactTargets(names: string[], allNames: Map<string, string>): string[] {
  const bySuffix = new Map<string, string[]>();
  for (const n of names) {
    const m = /^(.*\.)\d+\.(.+)$/.exec(n);
    const key = m ? `${m[1]}\u0000${m[2]}` : `\u0001${n}`;
    bySuffix.set(key, [...(bySuffix.get(key) ?? []), n]);
  }
  const targets: string[] = [];
  for (const [key, members] of bySuffix) {
    const [prefix, suffix] = key.split('\u0000');
    const everyOne = suffix !== undefined && [...allNames.keys()].filter((n) => {
      const m = /^(.*\.)\d+\.(.+)$/.exec(n);
      return m && m[1] === prefix && m[2] === suffix;
    }).length === members.length;
    if (everyOne && prefix !== undefined && suffix !== undefined) targets.push(`re:${escapeRegex(prefix)}\\d+\\.${escapeRegex(suffix)}$`);
    else targets.push(...members);
  }
  return targets;
}

/** config.json `quantization_config` for a W8A8 checkpoint: a group for the static layers, one for the dynamic ones. */
export function buildQuantizationConfig(schemes: Map<string, 'static' | 'dynamic' | 'float'>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const of = (s: string) => [...schemes].filter(([, v]) => v === s).map(([n]) => n);
  const groups: Record<string, unknown> = {};
  const add = (names: string[], inputs: unknown) => {
    if (names.length) groups[`group_${Object.keys(groups).length}`] = { targets: compactTargets(names, schemes as Map<string, string>), weights: WEIGHTS, input_activations: inputs, output_activations: null };
  };
  add(of('static'), STATIC_INPUT);
  add(of('dynamic'), DYNAMIC_INPUT);
  return {
    quant_method: 'compressed-tensors',
    format: 'int-quantized',
    quantization_status: 'compressed',
    config_groups: groups,
    ignore: of('float'),
    kv_cache_scheme: null,
    ...extra,
  };
}
