import { QllmError } from '../errors.js';
import { topKIndices } from './select.js';

export interface TopLogprobs {
  /** log-softmax of the chosen token. */
  chosenLogprob: number;
  /** The top-k tokens (best first, ties by lower id), then the chosen token if it is not among them. */
  top: Array<[id: number, logprob: number, rank: number]>;
}

/**
 * Log-probabilities of the RAW logits (vLLM's default logprobs_mode `raw_logprobs`: before temperature, penalties
 * and top-k/top-p): log-softmax with the max and log-sum-exp in float64, the `k` best by partial selection, and the
 * chosen token always included. `rank` is 1-based: 1 + the number of tokens with a strictly greater logit.
 * `k = 0` gives only the chosen token.
 */
export function topLogprobs(rawLogits: Float32Array, k: number, chosen: number): TopLogprobs {
  const n = rawLogits.length;
  if (!Number.isInteger(chosen) || chosen < 0 || chosen >= n) throw new QllmError(`topLogprobs: token id ${chosen} is outside the vocabulary [0, ${n})`);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (rawLogits[i]! > max) max = rawLogits[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(rawLogits[i]! - max);
  const lse = max + Math.log(sum);
  const chosenLogit = rawLogits[chosen]!;
  const chosenLogprob = chosenLogit - lse;

  const best = k > 0 ? topKIndices(rawLogits, k) : new Int32Array(0);
  const top: TopLogprobs['top'] = [];
  let rank = 1;
  let chosenSeen = false;
  for (let j = 0; j < best.length; j++) {
    const id = best[j]!;
    const x = rawLogits[id]!;
    // Every strictly greater logit is in `best` already, ahead of this one.
    if (j > 0 && x !== rawLogits[best[j - 1]!]) rank = j + 1;
    top.push([id, x - lse, rank]);
    if (id === chosen) chosenSeen = true;
  }
  if (!chosenSeen) {
    let greater = 0;
    for (let i = 0; i < n; i++) if (rawLogits[i]! > chosenLogit) greater++;
    top.push([chosen, chosenLogprob, greater + 1]);
  }
  return { chosenLogprob, top };
}
