import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { SamplingParams, type SamplingParamsInit } from './sampling-params.js';

describe('SamplingParams', () => {
  it("has vLLM's defaults", () => {
    const p = new SamplingParams();
    expect({ ...p }).toEqual({
      n: 1,
      presencePenalty: 0,
      frequencyPenalty: 0,
      repetitionPenalty: 1,
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
      seed: undefined,
      stop: [],
      stopTokenIds: [],
      ignoreEos: false,
      maxTokens: 16,
      minTokens: 0,
      logprobs: undefined,
      skipSpecialTokens: true,
      includeStopStrInOutput: false,
    });
    expect(p.greedy).toBe(false);
  });

  it('normalises like vLLM: stop string → list, stop ids de-duplicated, seed -1 → none, tiny temperature → 0.01', () => {
    const p = new SamplingParams({ stop: 'END', stopTokenIds: [5, 3, 5], seed: -1, temperature: 0.001 });
    expect(p.stop).toEqual(['END']);
    expect(p.stopTokenIds).toEqual([5, 3]);
    expect(p.seed).toBeUndefined();
    expect(p.temperature).toBe(0.01);
    expect(new SamplingParams({ stop: ['a', 'b'], topK: -1 })).toMatchObject({ stop: ['a', 'b'], topK: -1 });
  });

  it('greedy below temperature 1e-5, which turns top-p/top-k/min-p off', () => {
    const p = new SamplingParams({ temperature: 0, topP: 0.5, topK: 20, minP: 0.1 });
    expect(p.greedy).toBe(true);
    expect(p).toMatchObject({ temperature: 0, topP: 1, topK: 0, minP: 0 });
    expect(new SamplingParams({ temperature: 0.7 }).greedy).toBe(false);
    expect(() => new SamplingParams({ temperature: 0, n: 2 })).toThrow('SamplingParams.n must be 1 when using greedy sampling (temperature 0), got 2');
  });

  it('round-trips through a spread, so callers can override fields of an existing instance', () => {
    const base = new SamplingParams({ temperature: 0.6, topP: 0.95, topK: 20, stop: 'x', logprobs: 2 });
    const next = new SamplingParams({ ...base, maxTokens: 64 });
    expect({ ...next }).toEqual({ ...base, maxTokens: 64 });
  });

  const invalid: Array<[Partial<SamplingParamsInit>, string]> = [
    [{ n: 0 }, 'SamplingParams.n must be an integer >= 1, got 0'],
    [{ n: 1.5 }, 'SamplingParams.n must be an integer >= 1, got 1.5'],
    [{ presencePenalty: 2.5 }, 'SamplingParams.presencePenalty must be in [-2, 2], got 2.5'],
    [{ frequencyPenalty: -3 }, 'SamplingParams.frequencyPenalty must be in [-2, 2], got -3'],
    [{ repetitionPenalty: 0 }, 'SamplingParams.repetitionPenalty must be a finite number > 0, got 0'],
    [{ repetitionPenalty: Infinity }, 'SamplingParams.repetitionPenalty must be a finite number > 0, got Infinity'],
    [{ temperature: -0.1 }, 'SamplingParams.temperature must be a finite number >= 0, got -0.1'],
    [{ temperature: Number.NaN }, 'SamplingParams.temperature must be a finite number >= 0, got NaN'],
    [{ topP: 0 }, 'SamplingParams.topP must be in (0, 1], got 0'],
    [{ topP: 1.01 }, 'SamplingParams.topP must be in (0, 1], got 1.01'],
    [{ topK: -2 }, 'SamplingParams.topK must be 0 or -1 (off) or an integer >= 1, got -2'],
    [{ topK: 2.5 }, 'SamplingParams.topK must be 0 or -1 (off) or an integer >= 1, got 2.5'],
    [{ minP: 1.5 }, 'SamplingParams.minP must be in [0, 1], got 1.5'],
    [{ minP: -0.1 }, 'SamplingParams.minP must be in [0, 1], got -0.1'],
    [{ seed: 0.5 }, 'SamplingParams.seed must be an integer, got 0.5'],
    [{ stop: ['ok', ''] }, 'SamplingParams.stop must be non-empty strings, got ["ok",""]'],
    [{ stopTokenIds: [1, -2] }, 'SamplingParams.stopTokenIds must be integers >= 0, got [1,-2]'],
    [{ maxTokens: 0 }, 'SamplingParams.maxTokens must be an integer >= 1, got 0'],
    [{ minTokens: -1 }, 'SamplingParams.minTokens must be an integer >= 0, got -1'],
    [{ minTokens: 20 }, 'SamplingParams.minTokens must be <= maxTokens (16), got 20'],
    [{ logprobs: -1 }, 'SamplingParams.logprobs must be an integer >= 0, got -1'],
    [{ logprobs: 1.5 }, 'SamplingParams.logprobs must be an integer >= 0, got 1.5'],
    [{ ignoreEos: 'yes' as unknown as boolean }, 'SamplingParams.ignoreEos must be a boolean, got yes'],
  ];
  it.each(invalid)('rejects %j with a message naming the field', (init, message) => {
    expect(() => new SamplingParams(init)).toThrow(ConfigError);
    expect(() => new SamplingParams(init)).toThrow(message);
  });

  it('accepts the edges of each range', () => {
    expect(() => new SamplingParams({ topP: 1e-9, minP: 1, presencePenalty: -2, frequencyPenalty: 2, topK: 1, logprobs: 0 })).not.toThrow();
    expect(() => new SamplingParams({ minTokens: 16, maxTokens: 16, temperature: 0, n: 1 })).not.toThrow();
  });

  it('rejects unknown fields, such as snake_case names', () => {
    expect(() => new SamplingParams({ top_p: 0.9 } as Partial<SamplingParamsInit>)).toThrow(/SamplingParams: unknown field 'top_p' \(known: n, /);
  });

  describe('fromGenerationDefaults', () => {
    it("uses generation_config.json's sampling fields as defaults, under overrides", () => {
      const defaults = { temperature: 0.6, topP: 0.95, topK: 20, minP: 0, repetitionPenalty: 1.05, maxNewTokens: 256 };
      const p = SamplingParams.fromGenerationDefaults(defaults);
      expect(p).toMatchObject({ temperature: 0.6, topP: 0.95, topK: 20, minP: 0, repetitionPenalty: 1.05, maxTokens: 256, n: 1 });
      const q = SamplingParams.fromGenerationDefaults(defaults, { temperature: 1, maxTokens: 8 });
      expect(q).toMatchObject({ temperature: 1, topP: 0.95, topK: 20, maxTokens: 8 });
    });

    it('ignores missing fields and extra generation_config keys', () => {
      const generation = { topP: 0.8, eosTokenIds: [1, 2] };
      expect({ ...SamplingParams.fromGenerationDefaults(generation) }).toEqual({ ...new SamplingParams({ topP: 0.8 }) });
      expect({ ...SamplingParams.fromGenerationDefaults({}) }).toEqual({ ...new SamplingParams() });
    });

    it('validates the merged result', () => {
      expect(() => SamplingParams.fromGenerationDefaults({ topP: 0 })).toThrow('SamplingParams.topP must be in (0, 1], got 0');
    });
  });
});
