/**
 * Golden Stick's PTQConfig (mindspore_gs/ptq/ptq_config.py) in camelCase, restricted to what SmoothQuant A8W8
 * on CPU supports, plus its ordered `layer_policies` (regex → per-layer config).
 *
 * Input may use Golden Stick's Python names (weight_quant_dtype, act_quant_dtype, act_quant_granularity,
 * weight_quant_granularity, outliers_suppression, precision_recovery, algo_args, opname_blacklist,
 * layer_policies), at the top level and inside each policy; they are renamed to camelCase before validation,
 * so error messages name the camelCase field. Giving a field in both spellings is an error.
 *
 * Differences from Golden Stick: `backend` defaults to 'cpu' (not 'ascend'); `actQuantDtype` defaults to
 * 'int8' and `outliersSuppression` to 'smooth' (this is the SmoothQuant method); a layer policy inherits every
 * field it leaves out from the global config (Golden Stick builds each policy as a fresh PTQConfig with the
 * class defaults); a policy carries no mode/backend.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError, parseWithSchema } from '@qllm/core';
import { compileSafeRegex } from './safe-regex.js';

export type OutliersSuppression = 'smooth' | 'none';
export type ActQuantGranularity = 'per_tensor' | 'per_token';

/** The fields a layer policy may override (Golden Stick: a policy is itself a PTQConfig). */
export interface LayerPolicy {
  weightQuantDtype?: 'int8';
  actQuantDtype?: 'int8' | null;
  outliersSuppression?: OutliersSuppression;
  actQuantGranularity?: ActQuantGranularity;
  weightQuantGranularity?: 'per_channel';
  precisionRecovery?: 'none';
  algoArgs?: { alpha?: number };
  /** Substrings of layer names to leave in float. */
  opnameBlacklist?: string[];
}

export interface PtqConfig {
  mode: 'quantize' | 'deploy';
  backend: 'cpu' | 'ascend';
  weightQuantDtype: 'int8';
  actQuantDtype: 'int8' | null;
  outliersSuppression: OutliersSuppression;
  actQuantGranularity: ActQuantGranularity;
  weightQuantGranularity: 'per_channel';
  precisionRecovery: 'none';
  algoArgs: { alpha: number };
  opnameBlacklist: string[];
  /**
   * Ordered; matched with Python re.match semantics (anchored at the start only) on a linear-time engine (RE2
   * syntax: Python's, without backreferences or lookaround; see safe-regex.ts).
   */
  layerPolicies: Array<[regex: string, policy: LayerPolicy]>;
}

/** What one linear layer gets, after policy matching and the blacklist. */
export interface LayerConfig {
  quantize: boolean;
  outliersSuppression: OutliersSuppression;
  actQuantDtype: 'int8' | null;
  actQuantGranularity: ActQuantGranularity;
  alpha: number;
}

const alpha = z.number().min(0).max(1);
const blacklist = z.array(z.string().min(1));

// Golden Stick's "A8W8 needs PER_CHANNEL weights" holds by construction: per_channel is the only weight granularity.
const globalSchema = z.strictObject({
  mode: z.enum(['quantize', 'deploy']).default('quantize'),
  backend: z.enum(['cpu', 'ascend']).default('cpu'),
  weightQuantDtype: z.literal('int8').default('int8'),
  actQuantDtype: z.literal('int8').nullable().default('int8'),
  outliersSuppression: z.enum(['smooth', 'none']).default('smooth'),
  actQuantGranularity: z.enum(['per_tensor', 'per_token']).default('per_tensor'),
  weightQuantGranularity: z.literal('per_channel').default('per_channel'),
  precisionRecovery: z.literal('none').default('none'),
  algoArgs: z.strictObject({ alpha: alpha.default(0.5) }).default({ alpha: 0.5 }),
  opnameBlacklist: blacklist.default([]),
});

const policySchema = z.strictObject({
  weightQuantDtype: z.literal('int8').optional(),
  actQuantDtype: z.literal('int8').nullable().optional(),
  outliersSuppression: z.enum(['smooth', 'none']).optional(),
  actQuantGranularity: z.enum(['per_tensor', 'per_token']).optional(),
  weightQuantGranularity: z.literal('per_channel').optional(),
  precisionRecovery: z.literal('none').optional(),
  algoArgs: z.strictObject({ alpha: alpha.optional() }).optional(),
  opnameBlacklist: blacklist.optional(),
});

// A Map, not an object: config keys such as 'toString' or '__proto__' must not find Object.prototype's members.
const SNAKE_TO_CAMEL: ReadonlyMap<string, string> = new Map([
  ['weight_quant_dtype', 'weightQuantDtype'],
  ['act_quant_dtype', 'actQuantDtype'],
  ['act_quant_granularity', 'actQuantGranularity'],
  ['weight_quant_granularity', 'weightQuantGranularity'],
  ['outliers_suppression', 'outliersSuppression'],
  ['precision_recovery', 'precisionRecovery'],
  ['algo_args', 'algoArgs'],
  ['opname_blacklist', 'opnameBlacklist'],
  ['layer_policies', 'layerPolicies'],
]);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Rename Golden Stick's snake_case keys of one config level; other keys (and non-objects) pass through to zod,
 * which reports unknown ones. Every key, '__proto__' included, stays an own data property (Object.fromEntries).
 */
function camelizeKeys(raw: unknown, source: string): unknown {
  if (!isPlainObject(raw)) return raw;
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(raw)) {
    const name = SNAKE_TO_CAMEL.get(key) ?? key;
    if (out.has(name)) throw new ConfigError(`${source}: invalid field — ${name}: given twice (camelCase and snake_case)`);
    out.set(name, value);
  }
  return Object.fromEntries(out);
}

/** Python re.match (anchored at the start of the name, not the whole name), on a linear-time engine. */
const policyRegExp = (regex: string) => compileSafeRegex(regex);

/** Golden Stick's cross-field rule (ptq_config.py): PER_TOKEN activations need int8 activations. */
function checkRules(c: { actQuantGranularity: ActQuantGranularity; actQuantDtype: 'int8' | null }, source: string): void {
  if (c.actQuantGranularity === 'per_token' && c.actQuantDtype !== 'int8') {
    throw new ConfigError(`${source}: invalid field — actQuantGranularity: 'per_token' needs actQuantDtype 'int8'`);
  }
}

/** The policy list, from `[[regex, policy], ...]` or `{ regex: policy }` (insertion order). */
function policyEntries(raw: unknown, source: string): Array<[unknown, unknown]> {
  if (raw === undefined) return [];
  if (isPlainObject(raw)) return Object.entries(raw);
  const bad = () => new ConfigError(`${source}: invalid field — layerPolicies: expected a list of [regex, policy] pairs or an object { regex: policy }`);
  if (!Array.isArray(raw)) throw bad();
  return raw.map((entry: unknown) => {
    if (!Array.isArray(entry) || entry.length !== 2) throw bad();
    return [entry[0], entry[1]];
  });
}

function parsePolicy(regex: unknown, raw: unknown, global: Omit<PtqConfig, 'layerPolicies'>, source: string): [string, LayerPolicy] {
  if (typeof regex !== 'string' || regex === '') throw new ConfigError(`${source}: invalid field — layerPolicies: a regex must be a non-empty string`);
  const label = `${source} layer policy '${regex.length > 100 ? `${regex.slice(0, 100)}…` : regex}'`;
  try {
    policyRegExp(regex);
  } catch (e) {
    throw new ConfigError(`${label}: invalid regular expression — ${(e as Error).message}`);
  }
  const policy = parseWithSchema(policySchema, camelizeKeys(raw, label), label);
  checkRules({
    actQuantGranularity: policy.actQuantGranularity ?? global.actQuantGranularity,
    actQuantDtype: policy.actQuantDtype === undefined ? global.actQuantDtype : policy.actQuantDtype,
  }, label);
  return [regex, policy];
}

/** Validate a PTQ config (camelCase or Golden Stick snake_case keys); failures are ConfigErrors naming the field. */
export function parsePtqConfig(raw: unknown, source = 'PTQ config'): PtqConfig {
  const normalized = camelizeKeys(raw, source);
  if (!isPlainObject(normalized)) throw new ConfigError(`${source}: invalid field — (root): expected an object`);
  const { layerPolicies, ...rest } = normalized;
  const global = parseWithSchema(globalSchema, rest, source);
  checkRules(global, source);
  const policies = policyEntries(layerPolicies, source).map(([regex, policy]) => parsePolicy(regex, policy, global, source));
  return { ...global, layerPolicies: policies };
}

/**
 * Golden Stick's Qwen3 SmoothQuant example (example/qwen3/ds_utils.py `create_ptq('smoothquant')`) with HF names:
 * everything smoothed, static per-tensor activations, lm_head left in float; down_proj (its w2) unsmoothed with
 * dynamic per-token activations and, as there, an empty blacklist.
 */
export function defaultSmoothQuantPreset(): PtqConfig {
  return parsePtqConfig({
    opnameBlacklist: ['lm_head'],
    layerPolicies: [['.*down_proj.*', { outliersSuppression: 'none', actQuantGranularity: 'per_token', opnameBlacklist: [] }]],
  }, 'SmoothQuant preset');
}

/**
 * The config of one linear layer (HF dotted name, e.g. `model.layers.3.mlp.down_proj`): the one matching policy
 * over the global config (two matches are an error, as in Golden Stick's Algorithm.get_layer_policy), and
 * quantize = false when a blacklist entry of the resolved config is a substring of the name.
 */
export function resolveLayerConfig(config: PtqConfig, layerName: string): LayerConfig {
  const matches = config.layerPolicies.filter(([regex]) => policyRegExp(regex).matchesStart(layerName));
  if (matches.length > 1) {
    throw new ConfigError(`PTQ config: layer ${layerName} matches more than one layer policy: ${matches.map(([r]) => `'${r}'`).join(' and ')}`);
  }
  const policy = matches[0]?.[1] ?? {};
  const blacklist = policy.opnameBlacklist ?? config.opnameBlacklist;
  return {
    quantize: !blacklist.some((name) => layerName.includes(name)),
    outliersSuppression: policy.outliersSuppression ?? config.outliersSuppression,
    actQuantDtype: policy.actQuantDtype === undefined ? config.actQuantDtype : policy.actQuantDtype,
    actQuantGranularity: policy.actQuantGranularity ?? config.actQuantGranularity,
    alpha: policy.algoArgs?.alpha ?? config.algoArgs.alpha,
  };
}

/** The policy regexes that match none of the given layer names (worth a warning: probably a typo). */
export function unusedPolicies(config: PtqConfig, layerNames: string[]): string[] {
  return config.layerPolicies
    .map(([regex]) => regex)
    .filter((regex) => {
      const re = policyRegExp(regex);
      return !layerNames.some((name) => re.matchesStart(name));
    });
}

/** Read and validate a JSON PTQ config file; a missing file or bad JSON is a ConfigError naming the path. */
export async function readPtqConfigFile(path: string): Promise<PtqConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${path}: cannot read the PTQ config — ${code === 'ENOENT' ? 'file not found' : (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON — ${(e as Error).message}`);
  }
  return parsePtqConfig(raw, path);
}
