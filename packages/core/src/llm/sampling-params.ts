import { ConfigError } from '../errors.js';
import { SAMPLING_EPS } from '../sampling/index.js';
import type { GenerationDefaults } from '../loading/generation-config.js';

/** Everything a SamplingParams can be built from: vLLM's fields in camelCase. */
export interface SamplingParamsInit {
  /** Completions per prompt. Default 1. */
  n: number;
  /** In [-2, 2]; > 0 discourages tokens already generated. Default 0. */
  presencePenalty: number;
  /** In [-2, 2]; > 0 discourages tokens by how often they were generated. Default 0. */
  frequencyPenalty: number;
  /** > 0; applies to prompt + generated tokens, > 1 discourages repeats. Default 1. */
  repetitionPenalty: number;
  /** ≥ 0; 0 (< 1e-5) is greedy. Default 1. */
  temperature: number;
  /** In (0, 1]. Default 1 (off). */
  topP: number;
  /** 0 or -1: off; otherwise an integer ≥ 1. Default 0. */
  topK: number;
  /** In [0, 1]. Default 0 (off). */
  minP: number;
  /** Per-request seed; undefined (or -1): the LLM's generator. */
  seed: number | undefined;
  /** Stop strings; removed from the output unless includeStopStrInOutput. */
  stop: string | readonly string[];
  /** Token ids that end generation (besides EOS). */
  stopTokenIds: readonly number[];
  /** Keep generating after EOS. Default false. */
  ignoreEos: boolean;
  /** Tokens to generate at most, per completion. Default 16. */
  maxTokens: number;
  /** Tokens to generate before EOS or a stop token may end the completion. Default 0. */
  minTokens: number;
  /** Number of top logprobs returned per generated token (the chosen token is always included); undefined: none. */
  logprobs: number | undefined;
  /** Drop special tokens from the output text. Default true. */
  skipSpecialTokens: boolean;
  /** Keep the stop string that fired at the end of the text. Default false. */
  includeStopStrInOutput: boolean;
}

/** generation_config.json's sampling fields (as the model folder loader reads them). */
type SamplingDefaults = Pick<GenerationDefaults, 'temperature' | 'topP' | 'topK' | 'minP' | 'repetitionPenalty' | 'maxNewTokens'>;

const KEYS: ReadonlySet<string> = new Set<keyof SamplingParamsInit>([
  'n', 'presencePenalty', 'frequencyPenalty', 'repetitionPenalty', 'temperature', 'topP', 'topK', 'minP', 'seed',
  'stop', 'stopTokenIds', 'ignoreEos', 'maxTokens', 'minTokens', 'logprobs', 'skipSpecialTokens', 'includeStopStrInOutput',
]);

/** vLLM raises 0 < temperature < 0.01 to 0.01 (_MAX_TEMP) to avoid inf/NaN. */
const MIN_NONZERO_TEMPERATURE = 1e-2;

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
    const unknown = Object.keys(init).filter((key) => !KEYS.has(key));
    if (unknown.length) {
      throw new ConfigError(`SamplingParams: unknown field ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${[...KEYS].join(', ')})`);
    }
    this.n = init.n ?? 1;
    this.presencePenalty = init.presencePenalty ?? 0;
    this.frequencyPenalty = init.frequencyPenalty ?? 0;
    this.repetitionPenalty = init.repetitionPenalty ?? 1;
    const temperature = init.temperature ?? 1;
    this.temperature = temperature > 0 && temperature < MIN_NONZERO_TEMPERATURE ? MIN_NONZERO_TEMPERATURE : temperature;
    this.topP = init.topP ?? 1;
    this.topK = init.topK ?? 0;
    this.minP = init.minP ?? 0;
    this.seed = init.seed === -1 ? undefined : init.seed;
    this.stop = typeof init.stop === 'string' ? [init.stop] : [...(init.stop ?? [])];
    this.stopTokenIds = [...new Set(init.stopTokenIds ?? [])];
    this.ignoreEos = init.ignoreEos ?? false;
    this.maxTokens = init.maxTokens ?? 16;
    this.minTokens = init.minTokens ?? 0;
    this.logprobs = init.logprobs;
    this.skipSpecialTokens = init.skipSpecialTokens ?? true;
    this.includeStopStrInOutput = init.includeStopStrInOutput ?? false;
    this.verify();
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
   * `overrides` on top.
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

  private verify(): void {
    if (!isInt(this.n) || this.n < 1) fail('n', `must be an integer >= 1, got ${this.n}`);
    if (!(this.presencePenalty >= -2 && this.presencePenalty <= 2)) fail('presencePenalty', `must be in [-2, 2], got ${this.presencePenalty}`);
    if (!(this.frequencyPenalty >= -2 && this.frequencyPenalty <= 2)) fail('frequencyPenalty', `must be in [-2, 2], got ${this.frequencyPenalty}`);
    if (!(this.repetitionPenalty > 0 && Number.isFinite(this.repetitionPenalty))) {
      fail('repetitionPenalty', `must be a finite number > 0, got ${this.repetitionPenalty}`);
    }
    if (!(this.temperature >= 0 && Number.isFinite(this.temperature))) fail('temperature', `must be a finite number >= 0, got ${this.temperature}`);
    if (!(this.topP > 0 && this.topP <= 1)) fail('topP', `must be in (0, 1], got ${this.topP}`);
    if (!isInt(this.topK) || this.topK < -1) fail('topK', `must be 0 or -1 (off) or an integer >= 1, got ${this.topK}`);
    if (!(this.minP >= 0 && this.minP <= 1)) fail('minP', `must be in [0, 1], got ${this.minP}`);
    if (this.seed !== undefined && !Number.isSafeInteger(this.seed)) fail('seed', `must be an integer, got ${this.seed}`);
    if (this.stop.some((s) => typeof s !== 'string' || s === '')) fail('stop', `must be non-empty strings, got ${JSON.stringify(this.stop)}`);
    if (this.stopTokenIds.some((id) => !isInt(id) || id < 0)) {
      fail('stopTokenIds', `must be integers >= 0, got ${JSON.stringify(this.stopTokenIds)}`);
    }
    for (const key of ['ignoreEos', 'skipSpecialTokens', 'includeStopStrInOutput'] as const) {
      if (typeof this[key] !== 'boolean') fail(key, `must be a boolean, got ${String(this[key])}`);
    }
    if (!isInt(this.maxTokens) || this.maxTokens < 1) fail('maxTokens', `must be an integer >= 1, got ${this.maxTokens}`);
    if (!isInt(this.minTokens) || this.minTokens < 0) fail('minTokens', `must be an integer >= 0, got ${this.minTokens}`);
    if (this.minTokens > this.maxTokens) fail('minTokens', `must be <= maxTokens (${this.maxTokens}), got ${this.minTokens}`);
    if (this.logprobs !== undefined && (!isInt(this.logprobs) || this.logprobs < 0)) {
      fail('logprobs', `must be an integer >= 0, got ${this.logprobs}`);
    }
  }
}

function isInt(x: unknown): x is number {
  return Number.isInteger(x);
}

function fail(field: string, problem: string): never {
  throw new ConfigError(`SamplingParams.${field} ${problem}`);
}
