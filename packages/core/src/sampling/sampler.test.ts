import { describe, expect, it } from 'vitest';
import { QllmError } from '../errors.js';
import { CandidateBuffers, filterCandidates, type SamplerConfig } from './candidates.js';
import { Rng } from './rng.js';
import { argmax, drawWeighted, getSampler, greedySampler, randomSampler } from './sampler.js';

/** The obvious implementation: sort the whole vocabulary, then vLLM's top-k → top-p → min-p. Returns id → probability. */
function bruteForce(logits: Float32Array, c: SamplerConfig): Map<number, number> {
  let ids = [...logits.keys()].filter((i) => logits[i]! > -Infinity);
  ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (ids.length && logits[ids[0]!] === Infinity) ids = ids.filter((i) => logits[i] === Infinity);
  if (c.topK >= 1 && ids.length > c.topK) {
    const kth = logits[ids[c.topK - 1]!]!;
    ids = ids.filter((i) => logits[i]! >= kth);
  }
  const max = logits[ids[0]!]!;
  let w = ids.map((i) => (logits[i] === max ? 1 : Math.exp((logits[i]! - max) / c.temperature)));
  if (c.topP < 1) {
    const target = c.topP * w.reduce((a, b) => a + b, 0);
    let m = 0;
    for (let above = 0; m < ids.length && above < target; m++) above += w[m]!;
    ids = ids.slice(0, m);
    w = w.slice(0, m);
  }
  if (c.minP > 0) {
    ids = ids.filter((_, j) => w[j]! >= c.minP);
    w = w.filter((x) => x >= c.minP);
  }
  const z = w.reduce((a, b) => a + b, 0);
  return new Map(ids.map((id, j) => [id, w[j]! / z]));
}

function fast(logits: Float32Array, c: SamplerConfig, buffers?: CandidateBuffers): Map<number, number> {
  const { ids, weights, count } = filterCandidates(logits, c, buffers);
  let z = 0;
  for (let j = 0; j < count; j++) z += weights[j]!;
  const out = new Map<number, number>();
  for (let j = 0; j < count; j++) out.set(ids[j]!, weights[j]! / z);
  return out;
}

function expectSameCandidates(got: Map<number, number>, want: Map<number, number>): void {
  expect([...got.keys()].sort((a, b) => a - b)).toEqual([...want.keys()].sort((a, b) => a - b));
  for (const [id, p] of want) expect(Math.abs(got.get(id)! - p)).toBeLessThan(1e-12);
}

type Shape = 'normal' | 'peaked' | 'ties' | 'masked';
function randomLogits(rng: Rng, vocab: number, shape: Shape): Float32Array {
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  const scale = 0.5 + 4 * rng.next();
  const logits = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) logits[i] = gauss() * scale;
  if (shape === 'peaked') for (let j = 0; j < 20; j++) logits[Math.floor(rng.next() * vocab)] = 6 * scale + gauss() * scale;
  if (shape === 'ties') for (let i = 0; i < vocab; i++) logits[i] = Math.round(logits[i]! * 2) / 2;
  if (shape === 'masked') for (let i = 0; i < vocab; i++) if (rng.next() < 0.3) logits[i] = -Infinity;
  return logits;
}

function randomConfig(rng: Rng): SamplerConfig {
  const pick = <T>(xs: T[]) => xs[Math.floor(rng.next() * xs.length)]!;
  return {
    temperature: pick([0.1, 0.5, 0.7, 1, 1.7, 0.05 + 2 * rng.next()]),
    topK: pick([0, -1, 1, 2, 5, 20, 50, 999, 5000]),
    topP: pick([1, 1, 0.05, 0.5, 0.9, 0.95, 0.999, rng.next() || 1]),
    minP: pick([0, 0, 0, 0.01, 0.1, 0.5, 1]),
  };
}

describe('filterCandidates (temperature → top-k → top-p → min-p)', () => {
  it('matches a brute-force full sort on random logits (vocab 1000, 400 cases)', () => {
    const rng = new Rng(2024);
    const buffers = new CandidateBuffers(); // reused, as a sampler does
    const shapes: Shape[] = ['normal', 'peaked', 'ties', 'masked'];
    for (let seed = 0; seed < 400; seed++) {
      const logits = randomLogits(rng, 1000, shapes[seed % 4]!);
      const c = randomConfig(rng);
      expectSameCandidates(fast(logits, c, buffers), bruteForce(logits, c));
    }
  });

  it('matches a brute-force full sort at vocab 151936', () => {
    const rng = new Rng(151936);
    const configs: SamplerConfig[] = [
      { temperature: 0.7, topK: 20, topP: 0.95, minP: 0 },
      { temperature: 0.7, topK: 0, topP: 0.95, minP: 0 },
      { temperature: 1, topK: 0, topP: 0.5, minP: 0.05 },
      { temperature: 0.6, topK: 0, topP: 1, minP: 0.1 },
    ];
    for (const [j, shape] of (['normal', 'peaked', 'ties'] as const).entries()) {
      const logits = randomLogits(rng, 151936, shape);
      for (const c of configs.slice(j, j + 2)) expectSameCandidates(fast(logits, c), bruteForce(logits, c));
    }
  });

  it('keeps every token tied with the k-th largest, and ranks top-p ties by id', () => {
    const logits = Float32Array.from([1, 3, 2, 2, 2, 0]);
    expect([...fast(logits, { temperature: 1, topK: 2, topP: 1, minP: 0 }).keys()].sort()).toEqual([1, 2, 3, 4]);
    // Equal logits 2 at ids 2, 3, 4: the nucleus takes them in id order.
    const flat = new Float32Array(200).fill(0);
    const kept = fast(flat, { temperature: 1, topK: 0, topP: 0.1, minP: 0 });
    expect([...kept.keys()]).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('stays exact when the nucleus boundary sits within the far tail’s weight', () => {
    // Two tokens of weight 1, one of e^-5, and a long tail ~60 logits down: topP just around 1/Z decides
    // whether the second token is in, to within the tail's weight (which a fast path may only bound).
    const logits = new Float32Array(20_003).fill(-60);
    logits.set([0, 0, -5]);
    const z = 2 + Math.exp(-5);
    for (let i = -20; i <= 5; i++) {
      const c = { temperature: 1, topK: 0, topP: (1 / z) * (1 + i * 1e-10), minP: 0 };
      expectSameCandidates(fast(logits, c), bruteForce(logits, c));
    }
    // And when the nucleus reaches into such a tail (20000 × e^-31 ≈ 7e-10 of the mass).
    logits.fill(-31, 3);
    const deep = { temperature: 1, topK: 0, topP: 1 - 1e-10, minP: 0 };
    const want = bruteForce(logits, deep);
    expect(want.size).toBeGreaterThan(1000);
    expectSameCandidates(fast(logits, deep), want);
  });

  it('never offers -Infinity or NaN tokens; +Infinity tokens take all the mass', () => {
    const logits = Float32Array.from([Number.NaN, -Infinity, 0, 1, Number.NaN]);
    expect([...fast(logits, { temperature: 1, topK: 0, topP: 1, minP: 0 }).keys()]).toEqual([2, 3]);
    expect([...fast(logits, { temperature: 1, topK: 4, topP: 1, minP: 0 }).keys()]).toEqual([2, 3]);
    const forced = Float32Array.from([5, Infinity, 7, Infinity]);
    expectSameCandidates(fast(forced, { temperature: 0.7, topK: 0, topP: 0.9, minP: 0 }), new Map([[1, 0.5], [3, 0.5]]));
    expect(() => filterCandidates(Float32Array.from([-Infinity, Number.NaN]), { temperature: 1, topK: 0, topP: 1, minP: 0 })).toThrow(QllmError);
  });
});

describe('samplers', () => {
  it('greedy is argmax with ties to the lowest id, ignoring NaN', () => {
    expect(argmax(Float32Array.from([0, 3, 1, 3]))).toBe(1);
    expect(argmax(Float32Array.from([Number.NaN, -Infinity, -5]))).toBe(2);
    expect(argmax(Float32Array.from([-Infinity, 2, Infinity]))).toBe(2);
    expect(() => argmax(Float32Array.from([-Infinity, Number.NaN]))).toThrow(/no token to sample/);
    expect(greedySampler().sample(Float32Array.from([0, 1, 9, 2]), new Rng(1))).toBe(2);
  });

  it('getSampler is greedy below temperature 1e-5, whatever top-k/top-p say', () => {
    const logits = Float32Array.from([0, 5, 4.9, 1]);
    const sampler = getSampler({ temperature: 1e-6, topK: 3, topP: 0.5, minP: 0 });
    for (let i = 0; i < 20; i++) expect(sampler.sample(logits, new Rng(i))).toBe(1);
  });

  it('draws with the filtered, renormalised probabilities (20k draws within a few standard errors)', () => {
    const logits = Float32Array.from([2, 1.5, 1.4, 1, 0.2, -0.5, -1, 3, -Infinity, 0.9]);
    for (const c of [
      { temperature: 0.8, topK: 6, topP: 0.9, minP: 0.05 },
      { temperature: 1.5, topK: 0, topP: 1, minP: 0 },
      { temperature: 0.5, topK: 0, topP: 0.8, minP: 0 },
    ]) {
      const want = bruteForce(logits, c);
      const sampler = randomSampler(c);
      const rng = new Rng(1234);
      const n = 20_000;
      const counts = new Array<number>(logits.length).fill(0);
      for (let i = 0; i < n; i++) counts[sampler.sample(logits, rng)]!++;
      for (let id = 0; id < logits.length; id++) {
        const p = want.get(id) ?? 0;
        if (p === 0) expect(counts[id]).toBe(0);
        else expect(Math.abs(counts[id]! - n * p)).toBeLessThan(4.5 * Math.sqrt(n * p * (1 - p)) + 1);
      }
    }
  });

  it('seeded sampling is reproducible', () => {
    const logits = randomLogits(new Rng(5), 5000, 'peaked');
    const c = { temperature: 0.9, topK: 50, topP: 0.95, minP: 0 };
    const run = (seed: number) => {
      const sampler = getSampler(c);
      const rng = new Rng(seed);
      return Array.from({ length: 200 }, () => sampler.sample(logits, rng));
    };
    expect(run(11)).toEqual(run(11));
    expect(run(11)).not.toEqual(run(12));
  });

  it('a vocab-151936 step returns a valid candidate on every path (not timed)', () => {
    const rng = new Rng(9);
    const logits = randomLogits(rng, 151936, 'peaked');
    for (const c of [
      { temperature: 0.7, topK: 20, topP: 0.95, minP: 0 },
      { temperature: 0.7, topK: 0, topP: 0.95, minP: 0 },
      { temperature: 0.7, topK: 0, topP: 1, minP: 0 },
    ]) {
      const allowed = bruteForce(logits, c);
      const sampler = getSampler(c);
      for (let i = 0; i < 5; i++) expect(allowed.has(sampler.sample(logits, rng))).toBe(true);
    }
  });

  it('drawWeighted inverts the CDF and never picks a zero weight', () => {
    const ids = Int32Array.from([7, 8, 9]);
    const w = Float64Array.from([1, 0, 3]);
    expect(drawWeighted(ids, w, 3, 0)).toBe(7);
    expect(drawWeighted(ids, w, 3, 0.2499)).toBe(7);
    expect(drawWeighted(ids, w, 3, 0.25)).toBe(9);
    expect(drawWeighted(ids, w, 3, 1 - 2 ** -53)).toBe(9);
  });
});
