import { describe, expect, it } from 'vitest';
import { QllmError } from '../errors.js';
import { filterCandidates } from './candidates.js';
import { argmax } from './sampler.js';

const random = { temperature: 1, topK: 0, topP: 1, minP: 0 };

describe('the "no token to sample" error names the likely cause', () => {
  it('NaN logits: a corrupt checkpoint or an overflow in the weights', () => {
    const logits = Float32Array.from([Number.NaN, -Infinity, Number.NaN]);
    for (const sample of [() => argmax(logits), () => filterCandidates(logits, random), () => filterCandidates(logits, { ...random, topK: 2 })]) {
      expect(sample).toThrow(QllmError);
      expect(sample).toThrow(/all 3 logits are -Infinity or NaN, so there is no token to sample; 2 are NaN/);
      expect(sample).toThrow(/corrupt checkpoint .*overflow in the weights/);
    }
  });

  it('-Infinity alone: every token was masked', () => {
    const logits = Float32Array.from([-Infinity, -Infinity]);
    expect(() => argmax(logits)).toThrow(/no token to sample; every token was masked to -Infinity$/);
    expect(() => filterCandidates(logits, random)).toThrow(/no token to sample; every token was masked to -Infinity$/);
  });
});
