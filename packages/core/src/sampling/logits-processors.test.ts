import { describe, expect, it } from 'vitest';
import {
  buildLogitsProcessors,
  minTokensProcessor,
  presenceFrequencyPenaltyProcessor,
  repetitionPenaltyProcessor,
  type LogitsProcessorConfig,
  type SequenceState,
} from './logits-processors.js';

const state = (promptTokenIds: number[], outputTokenIds: number[]): SequenceState => ({ promptTokenIds, outputTokenIds });
const run = (p: (l: Float32Array, s: SequenceState) => void, logits: number[], s: SequenceState) => {
  const l = Float32Array.from(logits);
  p(l, s);
  return Array.from(l);
};

describe('minTokensProcessor', () => {
  it('masks EOS and stop ids while fewer than minTokens were generated', () => {
    const p = minTokensProcessor(2, [1, 3, 3, 99]);
    expect(run(p, [1, 2, 3, 4], state([0], []))).toEqual([1, -Infinity, 3, -Infinity]);
    expect(run(p, [1, 2, 3, 4], state([0], [0]))).toEqual([1, -Infinity, 3, -Infinity]);
    expect(run(p, [1, 2, 3, 4], state([0], [0, 2]))).toEqual([1, 2, 3, 4]);
  });
});

describe('repetitionPenaltyProcessor', () => {
  it('divides positive and multiplies non-positive logits of prompt and output tokens, once each', () => {
    const p = repetitionPenaltyProcessor(2);
    // token 0 (prompt, twice), 1 (output), 2 (prompt and output), 3 unseen, 4 zero logit
    const out = run(p, [4, -3, 1, 5, 0], state([0, 0, 2, 4], [1, 2, 2]));
    expect(out).toEqual([2, -6, 0.5, 5, 0]);
  });

  it('keeps working across steps (its scratch marks are cleared)', () => {
    const p = repetitionPenaltyProcessor(1.5);
    const s = state([1], [2]);
    expect(run(p, [3, 3, 3], s)).toEqual([3, 2, 2]);
    expect(run(p, [3, 3, 3], s)).toEqual([3, 2, 2]);
    expect(run(p, [3, 3, 3, 3], state([3], []))).toEqual([3, 3, 3, 2]);
  });

  it('penalty < 1 encourages repeats', () => {
    expect(run(repetitionPenaltyProcessor(0.5), [2, -2], state([0, 1], []))).toEqual([4, -1]);
  });
});

describe('presenceFrequencyPenaltyProcessor', () => {
  it('subtracts frequency × count + presence for output tokens only', () => {
    const p = presenceFrequencyPenaltyProcessor(0.5, 0.25);
    // output: token 1 ×3, token 2 ×1; token 0 is only in the prompt
    const out = run(p, [1, 1, 1, 1], state([0, 0], [1, 2, 1, 1]));
    expect(out).toEqual([1, 1 - 0.75 - 0.5, 1 - 0.25 - 0.5, 1]);
  });

  it('negative penalties encourage', () => {
    expect(run(presenceFrequencyPenaltyProcessor(-1, -0.5), [0, 0], state([], [1, 1]))).toEqual([0, 2]);
  });
});

describe('buildLogitsProcessors', () => {
  const base: LogitsProcessorConfig = { minTokens: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, stopTokenIds: [] };

  it('returns nothing for default params', () => {
    expect(buildLogitsProcessors(base, [7])).toEqual([]);
  });

  it('returns only the needed processors', () => {
    expect(buildLogitsProcessors({ ...base, minTokens: 3 }, [7])).toHaveLength(1);
    expect(buildLogitsProcessors({ ...base, minTokens: 3 }, [])).toHaveLength(0); // nothing to mask
    expect(buildLogitsProcessors({ ...base, repetitionPenalty: 1.1 }, [])).toHaveLength(1);
    expect(buildLogitsProcessors({ ...base, presencePenalty: 0.1 }, [])).toHaveLength(1);
    expect(buildLogitsProcessors({ ...base, frequencyPenalty: 0.1 }, [])).toHaveLength(1);
  });

  it("applies vLLM's order: min-tokens, repetition, then frequency/presence", () => {
    const ps = buildLogitsProcessors({ minTokens: 5, repetitionPenalty: 2, presencePenalty: 0, frequencyPenalty: 0.5, stopTokenIds: [2] }, [3]);
    expect(ps).toHaveLength(3);
    const logits = Float32Array.from([2, 2, 2, 2]);
    const s = state([], [0]);
    for (const p of ps) p(logits, s);
    // token 0: 2 / 2 (repetition) - 0.5 (frequency) = 0.5; the other order would give (2 - 0.5) / 2 = 0.75
    expect(Array.from(logits)).toEqual([0.5, 2, -Infinity, -Infinity]);
  });
});
