import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { SamplingParams, samplingFieldProblem, type SamplingParamsInit } from './sampling-params.js';

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
    [{ n: 0 }, 'SamplingParams.n must be an integer in [1, 16384], got 0'],
    [{ n: 1.5 }, 'SamplingParams.n must be an integer in [1, 16384], got 1.5'],
    [{ presencePenalty: 2.5 }, 'SamplingParams.presencePenalty must be a number in [-2, 2], got 2.5'],
    [{ frequencyPenalty: -3 }, 'SamplingParams.frequencyPenalty must be a number in [-2, 2], got -3'],
    [{ repetitionPenalty: 0 }, 'SamplingParams.repetitionPenalty must be a finite number > 0, got 0'],
    [{ repetitionPenalty: Infinity }, 'SamplingParams.repetitionPenalty must be a finite number > 0, got Infinity'],
    [{ temperature: -0.1 }, 'SamplingParams.temperature must be a number in [0, 2], got -0.1'],
    [{ temperature: Number.NaN }, 'SamplingParams.temperature must be a number in [0, 2], got NaN'],
    [{ topP: 0 }, 'SamplingParams.topP must be a number in (0, 1], got 0'],
    [{ topP: 1.01 }, 'SamplingParams.topP must be a number in (0, 1], got 1.01'],
    [{ topK: -2 }, 'SamplingParams.topK must be 0 or -1 (off) or an integer in [1, 2147483647], got -2'],
    [{ topK: 2.5 }, 'SamplingParams.topK must be 0 or -1 (off) or an integer in [1, 2147483647], got 2.5'],
    [{ minP: 1.5 }, 'SamplingParams.minP must be a number in [0, 1], got 1.5'],
    [{ minP: -0.1 }, 'SamplingParams.minP must be a number in [0, 1], got -0.1'],
    [{ seed: 0.5 }, 'SamplingParams.seed must be a safe integer (-1: none), got 0.5'],
    [{ stop: ['ok', ''] }, 'SamplingParams.stop must be non-empty strings, got "" at index 1'],
    [{ stopTokenIds: [1, -2] }, 'SamplingParams.stopTokenIds must be integers in [0, 2147483647], got -2 at index 1'],
    [{ maxTokens: 0 }, 'SamplingParams.maxTokens must be an integer in [1, 2147483647], got 0'],
    [{ minTokens: -1 }, 'SamplingParams.minTokens must be an integer in [0, 2147483647], got -1'],
    [{ minTokens: 20 }, 'SamplingParams.minTokens must be <= maxTokens (16), got 20'],
    [{ logprobs: -1 }, 'SamplingParams.logprobs must be an integer in [0, 2147483647], got -1'],
    [{ logprobs: 1.5 }, 'SamplingParams.logprobs must be an integer in [0, 2147483647], got 1.5'],
    [{ ignoreEos: 'yes' as unknown as boolean }, 'SamplingParams.ignoreEos must be true or false, got "yes"'],
    // Types: nothing is coerced (a numeric string used to pass every range check, and '0.005' became 0.01).
    [{ temperature: '0.005' as unknown as number }, 'SamplingParams.temperature must be a number in [0, 2], got "0.005"'],
    [{ topP: '0.5' as unknown as number }, 'SamplingParams.topP must be a number in (0, 1], got "0.5"'],
    [{ presencePenalty: '1' as unknown as number }, 'SamplingParams.presencePenalty must be a number in [-2, 2], got "1"'],
    [{ minP: true as unknown as number }, 'SamplingParams.minP must be a number in [0, 1], got true'],
    [{ n: '2' as unknown as number }, 'SamplingParams.n must be an integer in [1, 16384], got "2"'],
    [{ maxTokens: '8' as unknown as number }, 'SamplingParams.maxTokens must be an integer in [1, 2147483647], got "8"'],
    [{ stop: 5 as unknown as string }, 'SamplingParams.stop must be a string or an array of strings, got 5'],
    [{ stop: [1] as unknown as string[] }, 'SamplingParams.stop must be non-empty strings, got 1 at index 0'],
    [{ stopTokenIds: '12' as unknown as number[] }, 'SamplingParams.stopTokenIds must be an array of token ids, got "12"'],
    [{ stopTokenIds: ['1'] as unknown as number[] }, 'SamplingParams.stopTokenIds must be integers in [0, 2147483647], got "1" at index 0'],
    [{ seed: '7' as unknown as number }, 'SamplingParams.seed must be a safe integer (-1: none), got "7"'],
    [{ logprobs: '2' as unknown as number }, 'SamplingParams.logprobs must be an integer in [0, 2147483647], got "2"'],
    // Floats finite.
    [{ presencePenalty: Number.NaN }, 'SamplingParams.presencePenalty must be a number in [-2, 2], got NaN'],
    [{ temperature: Infinity }, 'SamplingParams.temperature must be a number in [0, 2], got Infinity'],
    [{ topP: Number.NaN }, 'SamplingParams.topP must be a number in (0, 1], got NaN'],
    [{ minP: Number.NaN }, 'SamplingParams.minP must be a number in [0, 1], got NaN'],
    [{ repetitionPenalty: Number.NaN }, 'SamplingParams.repetitionPenalty must be a finite number > 0, got NaN'],
    // Bounds.
    [{ temperature: 2.5 }, 'SamplingParams.temperature must be a number in [0, 2], got 2.5'],
    [{ n: 16385 }, 'SamplingParams.n must be an integer in [1, 16384], got 16385'],
    [{ topK: 1e9 * 3 }, 'SamplingParams.topK must be 0 or -1 (off) or an integer in [1, 2147483647], got 3000000000'],
    [{ topK: 2 ** 53 }, 'SamplingParams.topK must be 0 or -1 (off) or an integer in [1, 2147483647], got 9007199254740992'],
    [{ topK: Infinity }, 'SamplingParams.topK must be 0 or -1 (off) or an integer in [1, 2147483647], got Infinity'],
    [{ stopTokenIds: [5, 1e12] }, 'SamplingParams.stopTokenIds must be integers in [0, 2147483647], got 1000000000000 at index 1'],
    [{ stopTokenIds: [2 ** 31] }, 'SamplingParams.stopTokenIds must be integers in [0, 2147483647], got 2147483648 at index 0'],
    [{ stopTokenIds: [1.5] }, 'SamplingParams.stopTokenIds must be integers in [0, 2147483647], got 1.5 at index 0'],
    [{ seed: 2 ** 53 }, 'SamplingParams.seed must be a safe integer (-1: none), got 9007199254740992'],
    [{ seed: Number.NaN }, 'SamplingParams.seed must be a safe integer (-1: none), got NaN'],
    [{ maxTokens: 1e300 }, 'SamplingParams.maxTokens must be an integer in [1, 2147483647], got 1e+300'],
    [{ maxTokens: 2 ** 31 }, 'SamplingParams.maxTokens must be an integer in [1, 2147483647], got 2147483648'],
    [{ minTokens: 2 ** 31 }, 'SamplingParams.minTokens must be an integer in [0, 2147483647], got 2147483648'],
    [{ logprobs: 2 ** 53 }, 'SamplingParams.logprobs must be an integer in [0, 2147483647], got 9007199254740992'],
    [{ stop: '' }, 'SamplingParams.stop must be non-empty strings, got "" at index 0'],
  ];
  it.each(invalid)('rejects %j with a message naming the field', (init, message) => {
    expect(() => new SamplingParams(init)).toThrow(ConfigError);
    expect(() => new SamplingParams(init)).toThrow(message);
  });

  it('caps stop strings: at most 1024 of them, 65536 characters in all (100k stop strings used to be accepted)', () => {
    const many = (length: number) => Array.from({ length }, (_, i) => `s${i}`);
    expect(() => new SamplingParams({ stop: many(100_000) })).toThrow(ConfigError);
    expect(() => new SamplingParams({ stop: many(100_000) })).toThrow('SamplingParams.stop must hold at most 1024 strings, got 100000');
    expect(() => new SamplingParams({ stop: many(1025) })).toThrow('SamplingParams.stop must hold at most 1024 strings, got 1025');
    expect(() => new SamplingParams({ stop: ['a'.repeat(40_000), 'b'.repeat(30_000)] })).toThrow(
      'SamplingParams.stop must total at most 65536 characters, got 70000',
    );
    expect(() => new SamplingParams({ stop: many(1024) })).not.toThrow();
    expect(() => new SamplingParams({ stop: ['a'.repeat(65_535), 'b'] })).not.toThrow();
  });

  it('accepts the edges of each range', () => {
    expect(() => new SamplingParams({ topP: 1e-9, minP: 1, presencePenalty: -2, frequencyPenalty: 2, topK: 1, logprobs: 0 })).not.toThrow();
    expect(() => new SamplingParams({ minTokens: 16, maxTokens: 16, temperature: 0, n: 1 })).not.toThrow();
    const max = 2 ** 31 - 1;
    expect(() => new SamplingParams({ temperature: 2, n: 16384, topK: max, maxTokens: max, minTokens: max, logprobs: max })).not.toThrow();
    expect(() => new SamplingParams({ stopTokenIds: [0, max], seed: Number.MAX_SAFE_INTEGER })).not.toThrow();
    expect(() => new SamplingParams({ seed: Number.MIN_SAFE_INTEGER })).not.toThrow();
  });

  it('treats undefined and null fields as absent (defaults), as vLLM treats None', () => {
    expect({ ...new SamplingParams({ temperature: undefined, stop: undefined }) }).toEqual({ ...new SamplingParams() });
    expect({ ...new SamplingParams({ topP: null as unknown as number }) }).toEqual({ ...new SamplingParams() });
  });

  it('rejects a non-object init', () => {
    expect(() => new SamplingParams(null as unknown as Partial<SamplingParamsInit>)).toThrow('SamplingParams: expected an object of fields, got null');
    expect(() => new SamplingParams([] as unknown as Partial<SamplingParamsInit>)).toThrow(ConfigError);
  });

  describe('samplingFieldProblem', () => {
    it("says what is wrong with one field's value, without the field's name, or nothing when it is valid", () => {
      expect(samplingFieldProblem('topP', 0)).toBe('must be a number in (0, 1], got 0');
      expect(samplingFieldProblem('topK', 'x')).toBe('must be 0 or -1 (off) or an integer in [1, 2147483647], got "x"');
      expect(samplingFieldProblem('temperature', 0.7)).toBeUndefined();
      expect(samplingFieldProblem('seed', undefined)).toBeUndefined();
      expect(samplingFieldProblem('temperature', 'x'.repeat(10_000))).toBe(`must be a number in [0, 2], got "${'x'.repeat(96)}...`);
    });
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
      expect(() => SamplingParams.fromGenerationDefaults({ topP: 0 })).toThrow('SamplingParams.topP must be a number in (0, 1], got 0');
    });
  });
});
