import { describe, expect, it } from 'vitest';
import { topLogprobs } from './logprobs.js';
import { Rng } from './rng.js';
import { topKIndices } from './select.js';

/** Brute force: full sort, log-softmax by a plain float64 log-sum-exp. */
function bruteForce(logits: Float32Array, k: number, chosen: number) {
  const xs = Array.from(logits);
  const max = xs.reduce((a, x) => Math.max(a, x), -Infinity);
  const lse = max + Math.log(xs.reduce((a, x) => a + Math.exp(x - max), 0));
  const rank = (id: number) => 1 + xs.filter((x) => x > xs[id]!).length;
  const order = [...xs.keys()].sort((a, b) => xs[b]! - xs[a]! || a - b).slice(0, k);
  const ids = order.includes(chosen) ? order : [...order, chosen];
  return { chosenLogprob: xs[chosen]! - lse, top: ids.map((id) => [id, xs[id]! - lse, rank(id)] as const) };
}

function randomLogits(rng: Rng, vocab: number, ties: boolean): Float32Array {
  const out = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) out[i] = ties ? Math.floor(rng.next() * 20) : (rng.next() - 0.5) * 30;
  return out;
}

describe('topLogprobs', () => {
  it('matches brute force: values within 1e-6, ranks, chosen always included once', () => {
    const rng = new Rng(77);
    for (let trial = 0; trial < 60; trial++) {
      const vocab = trial < 50 ? 1000 : 151936;
      const logits = randomLogits(rng, vocab, trial % 3 === 0);
      const k = [0, 1, 5, 20][trial % 4]!;
      const chosen = trial % 2 ? Math.floor(rng.next() * vocab) : topKIndices(logits, 1)[0]!;
      const got = topLogprobs(logits, k, chosen);
      const want = bruteForce(logits, k, chosen);
      expect(Math.abs(got.chosenLogprob - want.chosenLogprob)).toBeLessThan(1e-6);
      expect(got.top.map(([id, , rank]) => [id, rank])).toEqual(want.top.map(([id, , rank]) => [id, rank]));
      got.top.forEach(([, lp], j) => expect(Math.abs(lp - want.top[j]![1])).toBeLessThan(1e-6));
      expect(got.top.filter(([id]) => id === chosen)).toHaveLength(1);
    }
  });

  it('k = 0 gives only the chosen token; k beyond the vocabulary gives all', () => {
    const logits = Float32Array.from([0, 1, 2]);
    const z = Math.log(1 + Math.E + Math.E ** 2);
    const only = topLogprobs(logits, 0, 1);
    expect(only.top).toHaveLength(1);
    expect(only.top[0]![0]).toBe(1);
    expect(only.top[0]![1]).toBeCloseTo(1 - z, 12);
    expect(only.top[0]![2]).toBe(2);
    expect(topLogprobs(logits, 10, 0).top.map(([id, , rank]) => [id, rank])).toEqual([[2, 1], [1, 2], [0, 3]]);
  });

  it('rejects a chosen id outside the vocabulary', () => {
    expect(() => topLogprobs(Float32Array.from([0, 1]), 1, 2)).toThrow(/token id 2 is outside the vocabulary \[0, 2\)/);
  });

  it('shares a rank between tied logits (1 + the count strictly greater)', () => {
    const logits = Float32Array.from([1, 3, 3, 2, 3]);
    expect(topLogprobs(logits, 4, 0).top.map(([id, , rank]) => [id, rank])).toEqual([[1, 1], [2, 1], [4, 1], [3, 4], [0, 5]]);
  });

  it('handles -Infinity logits (logprob -Infinity) without NaN elsewhere', () => {
    const got = topLogprobs(Float32Array.from([-Infinity, 0, 0]), 3, 1);
    expect(got.chosenLogprob).toBeCloseTo(Math.log(0.5), 12);
    expect(got.top.map(([id, lp, rank]) => [id, lp, rank])).toEqual([[1, got.chosenLogprob, 1], [2, got.chosenLogprob, 1], [0, -Infinity, 3]]);
  });
});

describe('topKIndices', () => {
  it('matches a full sort (value desc, id asc), skipping NaN', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(rng.next() * 300);
      const xs = Float32Array.from({ length: n }, () => (rng.next() < 0.05 ? Number.NaN : Math.floor(rng.next() * 40) - 20));
      if (trial % 5 === 0) xs[0] = -Infinity;
      const k = Math.floor(rng.next() * (n + 5));
      const want = [...xs.keys()].filter((i) => !Number.isNaN(xs[i]!)).sort((a, b) => xs[b]! - xs[a]! || a - b).slice(0, k);
      expect(Array.from(topKIndices(xs, k))).toEqual(want);
    }
  });
});
