import { QllmError } from '../errors.js';
import { CandidateBuffers, filterCandidates, noTokenError, type SamplerConfig } from './candidates.js';
import type { Rng } from './rng.js';

/** Picks one token id from a sequence's (processed) logits. Does not change `logits`. */
export interface Sampler {
  sample(logits: Float32Array, rng: Rng): number;
}

/** Temperatures below this are greedy (vLLM's _SAMPLING_EPS). */
export const SAMPLING_EPS = 1e-5;

/** The sampler for `config`: greedy when temperature < 1e-5, otherwise random with temperature/top-k/top-p/min-p. */
export function getSampler(config: SamplerConfig): Sampler {
  return config.temperature < SAMPLING_EPS ? greedySampler() : randomSampler(config);
}

/** Argmax in one pass; ties go to the lowest id. */
export function greedySampler(): Sampler {
  return { sample: (logits) => argmax(logits) };
}

/** Temperature → top-k → top-p → min-p (see `filterCandidates`), then one draw from the renormalised weights. */
export function randomSampler(config: SamplerConfig): Sampler {
  const buffers = new CandidateBuffers();
  return {
    sample(logits, rng) {
      const { ids, weights, count } = filterCandidates(logits, config, buffers);
      return drawWeighted(ids, weights, count, rng.next());
    },
  };
}

/** The index of the largest logit (lowest on ties); throws if all are -Infinity or NaN. */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  if (best < 0) throw noTokenError(logits);
  return best;
}

/** Inverse-CDF draw over [0, count) with `u` uniform in [0, 1). */
export function drawWeighted(ids: Int32Array, weights: Float64Array, count: number, u: number): number {
  let total = 0;
  for (let j = 0; j < count; j++) total += weights[j]!;
  const r = u * total;
  let acc = 0;
  let last = -1;
  for (let j = 0; j < count; j++) {
    const w = weights[j]!;
    if (w > 0) last = j;
    acc += w;
    if (r < acc) return ids[j]!;
  }
  if (last < 0) throw new QllmError('sampler: no candidate has a positive weight');
  return ids[last]!; // r rounded up to the total
}
