import { ConfigError } from '../errors.js';
import { SAMPLING_EPS } from '../sampling/index.js';
import type { GenerationDefaults } from '../loading/generation-config.js';

/** Everything a SamplingParams can be built from: vLLM's fields in camelCase. */
export interface SamplingParamsInit {
  /** Completions per prompt, in [1, 16384] (vLLM's VLLM_MAX_N_SEQUENCES). Default 1. */
  n: number;
  /** In [-2, 2]; > 0 discourages tokens already generated. Default 0. */
  presencePenalty: number;
  /** In [-2, 2]; > 0 discourages tokens by how often they were generated. Default 0. */
  frequencyPenalty: number;
  /** > 0; applies to prompt + generated tokens, > 1 discourages repeats. Default 1. */
  repetitionPenalty: number;
  /** In [0, 2] (vLLM ≥ 0.24, as the OpenAI API); 0 (< 1e-5) is greedy. Default 1. */
  temperature: number;
  /** In (0, 1]. Default 1 (off). */
  topP: number;
  /** 0 or -1: off; otherwise an integer in [1, 2^31 - 1] (past the vocabulary size: every token). Default 0. */
  topK: number;
  /** In [0, 1]. Default 0 (off). */
  minP: number;
  /** Per-request seed, a safe integer; undefined (or -1): the LLM's generator. */
  seed: number | undefined;
  /** Stop strings (non-empty; at most 1024, 65536 characters in all); removed from the output unless includeStopStrInOutput. */
  stop: string | readonly string[];
  /** Token ids (integers in [0, 2^31 - 1]) that end generation (besides EOS). */
  stopTokenIds: readonly number[];
  /** Keep generating after EOS. Default false. */
  ignoreEos: boolean;
  /** Tokens to generate at most, per completion, in [1, 2^31 - 1]. Default 16. */
  maxTokens: number;
  /** Tokens to generate before EOS or a stop token may end the completion. Default 0. */
  minTokens: number;
  /**
   * Number of top logprobs returned per generated token (the chosen token is always included); undefined: none.
   * An LLM rejects more than its maxLogprobs (default 20, vLLM's max_logprobs).
   */
  logprobs: number | undefined;
  /** Drop special tokens from the output text. Default true. */
  skipSpecialTokens: boolean;
  /** Keep the stop string that fired at the end of the text. Default false. */
  includeStopStrInOutput: boolean;
}

/** generation_config.json's sampling fields (as the model folder loader reads them). */
type SamplingDefaults = Pick<GenerationDefaults, 'temperature' | 'topP' | 'topK' | 'minP' | 'repetitionPenalty' | 'maxNewTokens'>;

/** vLLM raises 0 < temperature < 0.01 to 0.01 (_MAX_TEMP) to avoid inf/NaN. */
const MIN_NONZERO_TEMPERATURE = 1e-2;

/** Largest int32: the bound of the integer fields (vLLM keeps top_k and token ids in int32 tensors). */
const MAX_INT32 = 2 ** 31 - 1;
/** vLLM's VLLM_MAX_N_SEQUENCES default: completions per prompt at most. */
const MAX_N = 16384;
/**
 * Stop strings per request at most. Every decode step scans the decoded text once per stop string, so the count
 * bounds the per-token cost; real uses (chat turn markers, few-shot delimiters) need a handful (OpenAI allows 4).
 */
const MAX_STOP_STRINGS = 1024;
/** Total characters (UTF-16 code units) over all stop strings at most: bounds the same scan by length. */
const MAX_STOP_CHARS = 65536;

type Check = (value: unknown) => string | undefined;

/** How a bad value reads in a message: numbers as JS prints them, strings quoted, the rest as JSON; long ones cut short. */
function show(value: unknown): string {
  let text: string;
  if (typeof value === 'number' || typeof value === 'bigint' || value === undefined) text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);

/** A finite number in the range; `open` excludes the lower bound. */
function numberIn(lo: number, hi: number, open = false): Check {
  const range = `${open ? '(' : '['}${lo}, ${hi}]`;
  return (v) => (isNumber(v) && (open ? v > lo : v >= lo) && v <= hi ? undefined : `must be a number in ${range}, got ${show(v)}`);
}

function intIn(lo: number, hi: number): Check {
  return (v) => (isInt(v) && v >= lo && v <= hi ? undefined : `must be an integer in [${lo}, ${hi}], got ${show(v)}`);
}

const boolean: Check = (v) => (typeof v === 'boolean' ? undefined : `must be true or false, got ${show(v)}`);

/**
 * One rule per field: vLLM's `_verify_args` ranges, plus types (a JavaScript caller can pass anything, and a numeric
 * string would pass a range check by coercion), plus bounds where vLLM has none but a value past them can only
 * exhaust memory or time. A rule sees the value as given (before normalising), and returns what is wrong with it,
 * or undefined.
 */
const RULES: { readonly [K in keyof SamplingParamsInit]-?: Check } = {
  n: intIn(1, MAX_N),
  presencePenalty: numberIn(-2, 2),
  frequencyPenalty: numberIn(-2, 2),
  repetitionPenalty: (v) => (isNumber(v) && v > 0 ? undefined : `must be a finite number > 0, got ${show(v)}`),
  // vLLM >= 0.24 (vllm#44965) rejects temperature above 2, as the OpenAI API does.
  temperature: numberIn(0, 2),
  topP: numberIn(0, 1, true),
  // vLLM accepts any int >= 1 and rejects top_k > vocab per request; a top_k past the vocabulary keeps every token.
  topK: (v) => (isInt(v) && v >= -1 && v <= MAX_INT32 ? undefined : `must be 0 or -1 (off) or an integer in [1, ${MAX_INT32}], got ${show(v)}`),
  minP: numberIn(0, 1),
  seed: (v) => (v === undefined || isInt(v) ? undefined : `must be a safe integer (-1: none), got ${show(v)}`),
  stop: (v) => {
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list)) return `must be a string or an array of strings, got ${show(v)}`;
    if (list.length > MAX_STOP_STRINGS) return `must hold at most ${MAX_STOP_STRINGS} strings, got ${list.length}`;
    let chars = 0;
    for (const [i, s] of list.entries()) {
      if (typeof s !== 'string' || s === '') return `must be non-empty strings, got ${show(s)} at index ${i}`;
      chars += s.length;
    }
    if (chars > MAX_STOP_CHARS) return `must total at most ${MAX_STOP_CHARS} characters, got ${chars}`;
    return undefined;
  },
  stopTokenIds: (v) => {
    if (!Array.isArray(v)) return `must be an array of token ids, got ${show(v)}`;
    const i = v.findIndex((id) => !(isInt(id) && id >= 0 && id <= MAX_INT32));
    return i < 0 ? undefined : `must be integers in [0, ${MAX_INT32}], got ${show(v[i])} at index ${i}`;
  },
  ignoreEos: boolean,
  maxTokens: intIn(1, MAX_INT32),
  minTokens: intIn(0, MAX_INT32),
  // Capped further per LLM by its maxLogprobs (vLLM's max_logprobs, default 20).
  logprobs: (v) => (v === undefined ? undefined : intIn(0, MAX_INT32)(v)),
  skipSpecialTokens: boolean,
  includeStopStrInOutput: boolean,
};

const KEYS: ReadonlySet<string> = new Set(Object.keys(RULES));

/**
 * What is wrong with `value` as the SamplingParams field `field` on its own ("must be ..., got ..."), or undefined
 * when it is valid. For callers that report a value under their own name: a CLI flag, a generation_config.json key.
 */
export function samplingFieldProblem(field: keyof SamplingParamsInit, value: unknown): string | undefined {
  return RULES[field](value);
}

/**
 * Sampling parameters for one request, as vLLM's `SamplingParams`: same fields (camelCase), same defaults, same
 * validation (a ConfigError naming the field). As vLLM, a greedy temperature resets topP/topK/minP to off, requires
 * n = 1, 0 < temperature < 0.01 becomes 0.01, seed -1 means none, and stopTokenIds are de-duplicated.
 * The own enumerable properties are exactly the SamplingParamsInit fields, so `new SamplingParams({ ...other, x })` works.
 */
export class SamplingParams implements SamplingParamsInit {
  readonly n: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly repetitionPenalty: number;
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  readonly minP: number;
  readonly seed: number | undefined;
  readonly stop: readonly string[];
  readonly stopTokenIds: readonly number[];
  readonly ignoreEos: boolean;
  readonly maxTokens: number;
  readonly minTokens: number;
  readonly logprobs: number | undefined;
  readonly skipSpecialTokens: boolean;
  readonly includeStopStrInOutput: boolean;

  constructor(init: Partial<SamplingParamsInit> = {}) {
    if (typeof init !== 'object' || init === null || Array.isArray(init)) {
      throw new ConfigError(`SamplingParams: expected an object of fields, got ${show(init)}`);
    }
    const unknown = Object.keys(init).filter((key) => !KEYS.has(key));
    if (unknown.length) {
      throw new ConfigError(`SamplingParams: unknown field ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${[...KEYS].join(', ')})`);
    }
    // Validate the values as given, before normalising them (so that a string or NaN is never coerced).
    const given: SamplingParamsInit = {
      n: init.n ?? 1,
      presencePenalty: init.presencePenalty ?? 0,
      frequencyPenalty: init.frequencyPenalty ?? 0,
      repetitionPenalty: init.repetitionPenalty ?? 1,
      temperature: init.temperature ?? 1,
      topP: init.topP ?? 1,
      topK: init.topK ?? 0,
      minP: init.minP ?? 0,
      seed: init.seed,
      stop: init.stop ?? [],
      stopTokenIds: init.stopTokenIds ?? [],
      ignoreEos: init.ignoreEos ?? false,
      maxTokens: init.maxTokens ?? 16,
      minTokens: init.minTokens ?? 0,
      logprobs: init.logprobs,
      skipSpecialTokens: init.skipSpecialTokens ?? true,
      includeStopStrInOutput: init.includeStopStrInOutput ?? false,
    };
    for (const key of Object.keys(RULES) as Array<keyof SamplingParamsInit>) {
      const problem = RULES[key](given[key]);
      if (problem) fail(key, problem);
    }
    if (given.minTokens > given.maxTokens) fail('minTokens', `must be <= maxTokens (${given.maxTokens}), got ${given.minTokens}`);

    this.n = given.n;
    this.presencePenalty = given.presencePenalty;
    this.frequencyPenalty = given.frequencyPenalty;
    this.repetitionPenalty = given.repetitionPenalty;
    const temperature = given.temperature;
    this.temperature = temperature > 0 && temperature < MIN_NONZERO_TEMPERATURE ? MIN_NONZERO_TEMPERATURE : temperature;
    this.topP = given.topP;
    this.topK = given.topK;
    this.minP = given.minP;
    this.seed = given.seed === -1 ? undefined : given.seed;
    this.stop = typeof given.stop === 'string' ? [given.stop] : [...given.stop];
    this.stopTokenIds = [...new Set(given.stopTokenIds)];
    this.ignoreEos = given.ignoreEos;
    this.maxTokens = given.maxTokens;
    this.minTokens = given.minTokens;
    this.logprobs = given.logprobs;
    this.skipSpecialTokens = given.skipSpecialTokens;
    this.includeStopStrInOutput = given.includeStopStrInOutput;
    if (this.temperature < SAMPLING_EPS) {
      // Zero temperature means greedy sampling (vLLM).
      this.topP = 1;
      this.topK = 0;
      this.minP = 0;
      if (this.n > 1) fail('n', `must be 1 when using greedy sampling (temperature 0), got ${this.n}`);
    }
  }

  /**
   * vLLM's default sampling params: generation_config.json's sampling fields (and max_new_tokens → maxTokens), then
   * `overrides` on top. (readGenerationConfig has checked each field already, naming the file and the key.)
   */
  static fromGenerationDefaults(defaults: SamplingDefaults, overrides: Partial<SamplingParamsInit> = {}): SamplingParams {
    const fromConfig: Partial<SamplingParamsInit> = {};
    if (defaults.temperature !== undefined) fromConfig.temperature = defaults.temperature;
    if (defaults.topP !== undefined) fromConfig.topP = defaults.topP;
    if (defaults.topK !== undefined) fromConfig.topK = defaults.topK;
    if (defaults.minP !== undefined) fromConfig.minP = defaults.minP;
    if (defaults.repetitionPenalty !== undefined) fromConfig.repetitionPenalty = defaults.repetitionPenalty;
    if (defaults.maxNewTokens !== undefined) fromConfig.maxTokens = defaults.maxNewTokens;
    return new SamplingParams({ ...fromConfig, ...overrides });
  }

  /** True when sampling is argmax (temperature < 1e-5, as vLLM). */
  get greedy(): boolean {
    return this.temperature < SAMPLING_EPS;
  }
}

function fail(field: string, problem: string): never {
  throw new ConfigError(`SamplingParams.${field} ${problem}`);
}
