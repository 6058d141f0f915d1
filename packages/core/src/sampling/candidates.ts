import { QllmError } from '../errors.js';
import { topKHeap } from './select.js';

/** The SamplingParams fields random sampling reads (a SamplingParams satisfies it). */
export interface SamplerConfig {
  readonly temperature: number;
  /** 0 or -1 (any value < 1): off. */
  readonly topK: number;
  /** 1: off. */
  readonly topP: number;
  /** 0: off. */
  readonly minP: number;
}

/**
 * The tokens random sampling may draw, with unnormalised weights `exp((logit - max) / temperature)` (the best
 * token has weight 1). `ids`/`weights` are views into reused buffers, valid until the next `filterCandidates` call.
 */
export interface Candidates {
  readonly ids: Int32Array;
  readonly weights: Float64Array;
  readonly count: number;
}

/** Scratch memory reused across steps (one per sequence/sampler). */
export class CandidateBuffers {
  ids = new Int32Array(0);
  weights = new Float64Array(0);

  reserve(n: number): void {
    if (this.ids.length < n) {
      this.ids = new Int32Array(n);
      this.weights = new Float64Array(n);
    }
  }
}

/** Below this many candidates, a segment is ordered by insertion sort. */
const SMALL = 32;
/** Above this many candidates, top-p first drops tokens too light to be in the nucleus. */
const PREFILTER_MIN = 512;

/**
 * The one home of temperature → top-k → top-p → min-p (vLLM's order), exact and without sorting the vocabulary:
 * - top-k keeps every token whose logit is ≥ the k-th largest (ties at the boundary are kept, as vLLM and HF);
 *   the k-th largest comes from a bounded heap.
 * - top-p keeps, in order of probability (ties: lower id first), each token whose preceding mass is < topP — the
 *   smallest prefix reaching topP. Found by a quickselect-style partition on weights, expected O(candidates).
 * - min-p keeps tokens with probability ≥ minP × the top probability, i.e. weight ≥ minP.
 * -Infinity and NaN logits are never candidates. Weights are float64.
 */
export function filterCandidates(logits: Float32Array, config: SamplerConfig, buffers = new CandidateBuffers()): Candidates {
  const n = logits.length;
  const t = config.temperature;
  const k = config.topK >= 1 && config.topK < n ? config.topK : 0;
  let count = 0;
  let total = 0;
  if (k > 0) {
    const heap = topKHeap(logits, k);
    const kth = heap.size === k ? heap.values[0]! : -Infinity;
    let max = -Infinity;
    for (let j = 0; j < heap.size; j++) if (heap.values[j]! > max) max = heap.values[j]!;
    if (!(max > -Infinity)) throw noCandidates(n);
    buffers.reserve(Math.min(n, 2 * k + 16));
    for (let i = 0; i < n; i++) {
      const x = logits[i]!;
      if (x >= kth && x > -Infinity) {
        if (count === buffers.ids.length) grow(buffers, count);
        buffers.ids[count] = i;
        count++;
      }
    }
    const { ids, weights } = buffers;
    for (let j = 0; j < count; j++) {
      const x = logits[ids[j]!]!;
      const w = x === max ? 1 : Math.exp((x - max) / t);
      weights[j] = w;
      total += w;
    }
  } else {
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
    if (!(max > -Infinity)) throw noCandidates(n);
    buffers.reserve(n);
    const { ids, weights } = buffers;
    for (let i = 0; i < n; i++) {
      const x = logits[i]!;
      if (x > -Infinity) {
        const w = x === max ? 1 : Math.exp((x - max) / t);
        ids[count] = i;
        weights[count] = w;
        total += w;
        count++;
      }
    }
  }
  const { ids, weights } = buffers;
  if (config.topP < 1) {
    const target = config.topP * total;
    // Every dropped token weighs < cut, so together < (1 - topP)·total / 2: the nucleus is inside what remains.
    if (count > PREFILTER_MIN) count = keepAtLeast(ids, weights, count, (0.5 * (1 - config.topP) * total) / count);
    count = nucleus(ids, weights, count, target);
  }
  if (config.minP > 0) count = keepAtLeast(ids, weights, count, config.minP);
  return { ids, weights, count };
}

function noCandidates(n: number): QllmError {
  return new QllmError(`sampler: all ${n} logits are -Infinity or NaN, so there is no token to sample`);
}

function grow(buffers: CandidateBuffers, count: number): void {
  const ids = new Int32Array(count * 2);
  ids.set(buffers.ids.subarray(0, count));
  buffers.ids = ids;
  buffers.weights = new Float64Array(count * 2);
}

/** Compacts [0, count) to the entries with weight ≥ cut, keeping their order. */
function keepAtLeast(ids: Int32Array, weights: Float64Array, count: number, cut: number): number {
  let m = 0;
  for (let j = 0; j < count; j++) {
    const w = weights[j]!;
    if (w >= cut) {
      ids[m] = ids[j]!;
      weights[m] = w;
      m++;
    }
  }
  return m;
}

/**
 * Reorders [0, count) so the top-p nucleus is [0, m) and returns m. The nucleus is, in order of weight descending
 * then id ascending, every entry whose preceding weight sum is < target. Invariant: `acc` (the weight of entries
 * already known to precede [lo, hi), all kept) is < target.
 */
function nucleus(ids: Int32Array, weights: Float64Array, count: number, target: number): number {
  let lo = 0;
  let hi = count;
  let acc = 0;
  while (hi - lo > SMALL) {
    const pivot = medianOf3(weights[lo]!, weights[(lo + hi) >>> 1]!, weights[hi - 1]!);
    // Three-way partition: [lo, lt) > pivot, [lt, i) == pivot, [gt, hi) < pivot.
    let lt = lo;
    let i = lo;
    let gt = hi;
    let heavier = 0;
    while (i < gt) {
      const w = weights[i]!;
      if (w > pivot) {
        heavier += w;
        swap(ids, weights, lt++, i++);
      } else if (w < pivot) {
        swap(ids, weights, i, --gt);
      } else {
        i++;
      }
    }
    if (acc + heavier >= target) {
      hi = lt; // the nucleus ends inside the heavier part (or right after it)
      continue;
    }
    acc += heavier;
    insertionSort(ids, weights, lt, gt); // equal weights: by id
    for (let j = lt; j < gt; j++) {
      if (acc >= target) return j;
      acc += weights[j]!;
    }
    lo = gt;
  }
  insertionSort(ids, weights, lo, hi);
  for (let j = lo; j < hi; j++) {
    if (acc >= target) return j;
    acc += weights[j]!;
  }
  return hi;
}

function medianOf3(a: number, b: number, c: number): number {
  return a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
}

function swap(ids: Int32Array, weights: Float64Array, a: number, b: number): void {
  const id = ids[a]!;
  ids[a] = ids[b]!;
  ids[b] = id;
  const w = weights[a]!;
  weights[a] = weights[b]!;
  weights[b] = w;
}

/** Sorts [lo, hi) by weight descending, then id ascending. */
function insertionSort(ids: Int32Array, weights: Float64Array, lo: number, hi: number): void {
  for (let i = lo + 1; i < hi; i++) {
    const id = ids[i]!;
    const w = weights[i]!;
    let j = i - 1;
    while (j >= lo && (weights[j]! < w || (weights[j]! === w && ids[j]! > id))) {
      ids[j + 1] = ids[j]!;
      weights[j + 1] = weights[j]!;
      j--;
    }
    ids[j + 1] = id;
    weights[j + 1] = w;
  }
}
