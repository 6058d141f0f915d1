import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { Rng } from './rng.js';

const draws = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.next());

describe('Rng', () => {
  it('is reproducible for a seed and differs between seeds', () => {
    expect(draws(new Rng(42), 100)).toEqual(draws(new Rng(42), 100));
    expect(draws(new Rng(42), 10)).not.toEqual(draws(new Rng(43), 10));
    // Seeds that agree in their low 32 bits still differ; negative seeds are fine.
    expect(draws(new Rng(1), 10)).not.toEqual(draws(new Rng(1 + 2 ** 32), 10));
    expect(draws(new Rng(-1), 10)).not.toEqual(draws(new Rng(2 ** 32 - 1), 10));
    expect(draws(new Rng(0), 10)).not.toEqual(draws(new Rng(1), 10));
  });

  it('draws uniformly in [0, 1)', () => {
    const rng = new Rng(7);
    const xs = draws(rng, 100_000);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / xs.length));
    const bins = new Array<number>(10).fill(0);
    for (const x of xs) bins[Math.floor(x * 10)]!++;
    for (const b of bins) expect(Math.abs(b - 10_000)).toBeLessThan(5 * Math.sqrt(10_000 * 0.9));
  });

  it('gives 32-bit integers', () => {
    const rng = new Rng(3);
    for (let i = 0; i < 1000; i++) {
      const u = rng.nextUint32();
      expect(Number.isInteger(u) && u >= 0 && u < 2 ** 32).toBe(true);
    }
  });

  it('seeds from crypto randomness when unseeded', () => {
    const a = draws(new Rng(), 5);
    const b = draws(new Rng(), 5);
    expect(a).not.toEqual(b);
    for (const x of a) expect(x >= 0 && x < 1).toBe(true);
  });

  it('rejects seeds that are not safe integers', () => {
    expect(() => new Rng(1.5)).toThrow(ConfigError);
    expect(() => new Rng(Number.NaN)).toThrow(/Rng seed must be a safe integer, got NaN/);
  });
});
