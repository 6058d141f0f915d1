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

/** Buckets per level of the top-p histogram search. */
const BUCKETS = 1024;
/** The first level's buckets span this many temperature-scaled logits below the max; lower ones share the last. */
const FIRST_LEVEL_RANGE = 32;
/** Top-p without top-k first skips exp() below max - TAIL_RANGE·T; together those weigh < vocab·e^-30. */
const TAIL_RANGE = 30;
/** Segments this small are sorted outright. */
const SORT_MAX = 64;

/** Scratch memory reused across steps (one per sequence/sampler). */
export class CandidateBuffers {
  ids = new Int32Array(0);
  weights = new Float64Array(0);
  /** Top-p search: each candidate's bucket at the current level. */
  buckets = new Uint16Array(0);
  readonly bucketMass = new Float64Array(BUCKETS);
  readonly bucketCount = new Int32Array(BUCKETS);
  spareIds = new Int32Array(0);
  spareWeights = new Float64Array(0);

  /** Room for n candidates, keeping the first `keep` already written. */
  reserve(n: number, keep = 0): void {
    if (this.ids.length >= n) return;
    const ids = new Int32Array(n);
    const weights = new Float64Array(n);
    const buckets = new Uint16Array(n);
    ids.set(this.ids.subarray(0, keep));
    weights.set(this.weights.subarray(0, keep));
    buckets.set(this.buckets.subarray(0, keep));
    this.ids = ids;
    this.weights = weights;
    this.buckets = buckets;
  }
}

/**
 * The error when every logit is -Infinity or NaN, with the likely cause: NaN comes from the model's forward pass
 * (the sampler does not know which model; callers may add it), -Infinity alone from masking.
 */
export function noTokenError(logits: Float32Array): QllmError {
  let nan = 0;
  for (let i = 0; i < logits.length; i++) if (Number.isNaN(logits[i]!)) nan++;
  const cause =
    nan > 0
      ? `${nan} are NaN, which the forward pass produced: most likely a corrupt checkpoint (NaN or Inf in a weight) or ` +
        `an overflow in the weights (values too large for the compute dtype)`
      : 'every token was masked to -Infinity';
  return new QllmError(`sampler: all ${logits.length} logits are -Infinity or NaN, so there is no token to sample; ${cause}`);
}

/**
 * The one home of temperature → top-k → top-p → min-p (vLLM's order), exact, without sorting the vocabulary.
 * Tokens rank by logit descending, then id ascending.
 * - top-k keeps every token whose logit is ≥ the k-th largest (boundary ties are kept, as vLLM and HF); the k-th
 *   largest comes from a bounded heap.
 * - top-p keeps each token whose preceding probability mass (in rank order) is < topP: the smallest prefix reaching
 *   topP. Found by a histogram search over logit buckets (the first level built during the softmax pass), sorting
 *   only the few tokens of the bucket where the boundary falls. The far tail's exp() is skipped unless its (bounded)
 *   weight could move the boundary.
 * - min-p keeps tokens with probability ≥ minP × the top probability, i.e. weight ≥ minP.
 * -Infinity and NaN logits are never candidates; if any logit is +Infinity, only those are. Weights are float64.
 */
export function filterCandidates(logits: Float32Array, config: SamplerConfig, buffers = new CandidateBuffers()): Candidates {
  const n = logits.length;
  const k = config.topK >= 1 && config.topK < n ? config.topK : 0;
  let max = -Infinity;
  let floor = -Infinity;
  if (k > 0) {
    const heap = topKHeap(logits, k);
    for (let j = 0; j < heap.size; j++) if (heap.values[j]! > max) max = heap.values[j]!;
    if (heap.size === k) floor = heap.values[0]!;
  } else {
    for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  }
  if (!(max > -Infinity)) throw noTokenError(logits);
  if (max === Infinity) floor = Infinity; // the +Infinity tokens take all the mass
  const room = k > 0 ? Math.min(n, 2 * k + 16) : n;
  let count: number;
  if (config.topP < 1) {
    // Tokens more than TAIL_RANGE below the max (in scaled logits) are first only counted, not exp'd: their mass is
    // then bounded, and if the nucleus is the same at both ends of the bound, it is the exact one.
    const pass = collect(logits, config, buffers, max, floor, room, k > 0 ? -Infinity : -TAIL_RANGE);
    const low = config.topP * pass.total;
    const high = config.topP * (pass.total + pass.skipped * Math.exp(-TAIL_RANGE) * (1 + 1e-9));
    count = nucleus(logits, buffers, pass.count, high);
    if (pass.skipped > 0 && !(count < pass.count && lastAbove(buffers.weights, count) < low)) {
      const full = collect(logits, config, buffers, max, floor, room, -Infinity);
      count = nucleus(logits, buffers, full.count, config.topP * full.total);
    }
  } else {
    // With min-p alone, tokens far below its cut skip exp() (the cut has slack; keepAtLeast makes the exact test).
    const skipBelow = config.minP > 0 ? Math.log(config.minP) * (1 + 1e-9) - 1e-9 : -Infinity;
    count = collect(logits, config, buffers, max, floor, room, skipBelow).count;
  }
  if (config.minP > 0) count = keepAtLeast(buffers.ids, buffers.weights, count, config.minP);
  return { ids: buffers.ids, weights: buffers.weights, count };
}

/**
 * Writes the tokens with logit ≥ floor (and > -Infinity) and their weights exp((x - max) / T), skipping (and
 * counting) those whose scaled logit is below `skipBelow`. For top-p it also fills the first histogram level.
 */
function collect(
  logits: Float32Array,
  config: SamplerConfig,
  buffers: CandidateBuffers,
  max: number,
  floor: number,
  room: number,
  skipBelow: number,
): { count: number; total: number; skipped: number } {
  const n = logits.length;
  const t = config.temperature;
  const topP = config.topP < 1;
  const scale = BUCKETS / (FIRST_LEVEL_RANGE * t);
  const { bucketMass: mass, bucketCount: counts } = buffers;
  if (topP) {
    mass.fill(0);
    counts.fill(0);
  }
  buffers.reserve(room);
  let { ids, weights, buckets } = buffers;
  let count = 0;
  let total = 0;
  let skipped = 0;
  for (let i = 0; i < n; i++) {
    const x = logits[i]!;
    if (!(x >= floor && x > -Infinity)) continue;
    const s = x === max ? 0 : (x - max) / t;
    if (s < skipBelow) {
      skipped++;
      continue;
    }
    const w = Math.exp(s);
    if (count === ids.length) {
      buffers.reserve(2 * count, count); // top-k ties beyond the reserved room
      ({ ids, weights, buckets } = buffers);
    }
    if (topP) {
      const b = bucketOf(max, x, scale);
      buckets[count] = b;
      mass[b]! += w;
      counts[b]!++;
    }
    ids[count] = i;
    weights[count++] = w;
    total += w;
  }
  return { count, total, skipped };
}

/** The weight ranked ahead of the last-ranked entry of [0, m), m ≥ 1: the sum minus the smallest weight. */
function lastAbove(weights: Float64Array, m: number): number {
  let sum = 0;
  let least = Infinity;
  for (let j = 0; j < m; j++) {
    const w = weights[j]!;
    sum += w;
    if (w < least) least = w;
  }
  return sum - least;
}

/** Bucket of logit x below `top` (monotone: a higher logit never lands in a later bucket). */
function bucketOf(top: number, x: number, scale: number): number {
  const d = (top - x) * scale;
  return d < BUCKETS - 1 ? d | 0 : BUCKETS - 1;
}

/** Compacts [0, count) to the entries with weight ≥ cut, keeping their order. */
function keepAtLeast(ids: Int32Array, weights: Float64Array, count: number, cut: number): number {
  let m = 0;
  for (let j = 0; j < count; j++) {
    const w = weights[j]!;
    if (w >= cut) {
      ids[m] = ids[j]!;
      weights[m++] = w;
    }
  }
  return m;
}

/**
 * Reorders [0, count) so the top-p nucleus is [0, m) and returns m: in rank order, every entry whose preceding
 * weight is < target. Each level histograms the segment's weight into logit buckets (filterCandidates fills the
 * first level's histogram and `buckets`); buckets before the boundary bucket are kept, later ones
 * dropped, and the search goes on inside the boundary bucket. `acc`, the weight kept ahead of the segment, is < target.
 */
function nucleus(logits: Float32Array, buffers: CandidateBuffers, count: number, target: number): number {
  const { ids, weights, buckets, bucketMass: mass, bucketCount: counts } = buffers;
  let lo = 0;
  let hi = count;
  let acc = 0;
  let filled = true;
  while (hi - lo > SORT_MAX) {
    if (!filled) {
      let top = -Infinity;
      let bottom = Infinity;
      for (let j = lo; j < hi; j++) {
        const x = logits[ids[j]!]!;
        if (x > top) top = x;
        if (x < bottom) bottom = x;
      }
      if (top === bottom) {
        ids.subarray(lo, hi).sort(); // all tied (equal weights): rank by id
        break;
      }
      const scale = BUCKETS / (top - bottom); // `top` lands in bucket 0, `bottom` in the last: the segment shrinks
      mass.fill(0);
      counts.fill(0);
      for (let j = lo; j < hi; j++) {
        const b = bucketOf(top, logits[ids[j]!]!, scale);
        buckets[j] = b;
        mass[b]! += weights[j]!;
        counts[b]!++;
      }
    }
    filled = false;
    let star = 0;
    let before = acc;
    while (star < BUCKETS - 1 && before + mass[star]! < target) before += mass[star++]!;
    const inStar = counts[star]!;
    if (buffers.spareIds.length < inStar) {
      buffers.spareIds = new Int32Array(inStar);
      buffers.spareWeights = new Float64Array(inStar);
    }
    const { spareIds, spareWeights } = buffers;
    let write = lo;
    let spare = 0;
    for (let j = lo; j < hi; j++) {
      const b = buckets[j]!;
      if (b < star) {
        ids[write] = ids[j]!;
        weights[write++] = weights[j]!;
      } else if (b === star) {
        spareIds[spare] = ids[j]!;
        spareWeights[spare++] = weights[j]!;
      }
    }
    ids.set(spareIds.subarray(0, spare), write);
    weights.set(spareWeights.subarray(0, spare), write);
    acc = before;
    lo = write;
    hi = write + spare;
  }
  if (hi - lo <= SORT_MAX) sortByRank(logits, ids, weights, lo, hi);
  for (let j = lo; j < hi; j++) {
    if (acc >= target) return j;
    acc += weights[j]!;
  }
  return hi;
}

/** Insertion sort of [lo, hi) by logit descending, then id ascending. */
function sortByRank(logits: Float32Array, ids: Int32Array, weights: Float64Array, lo: number, hi: number): void {
  for (let i = lo + 1; i < hi; i++) {
    const id = ids[i]!;
    const w = weights[i]!;
    const x = logits[id]!;
    let j = i - 1;
    while (j >= lo && (logits[ids[j]!]! < x || (logits[ids[j]!]! === x && ids[j]! > id))) {
      ids[j + 1] = ids[j]!;
      weights[j + 1] = weights[j]!;
      j--;
    }
    ids[j + 1] = id;
    weights[j + 1] = w;
  }
}
