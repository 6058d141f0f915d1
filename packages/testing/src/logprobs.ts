// Small helpers over log-probability vectors (float64).

/** Natural-log log-softmax, computed stably. */
export function logSoftmax(logits: Float64Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - logZ;
  return out;
}

/** Index of the largest value; the lowest index wins ties (like torch.argmax). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** The k largest entries of a log-prob vector as [id, logprob] pairs, best first (lowest id first on ties). */
export function topK(values: ArrayLike<number>, k: number): [number, number][] {
  const best: [number, number][] = [];
  if (k <= 0) return best;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (best.length === k && x <= best[k - 1]![1]) continue;
    let j = best.length < k ? best.length : k - 1;
    while (j > 0 && best[j - 1]![1] < x) j--;
    best.splice(j, 0, [i, x]);
    if (best.length > k) best.pop();
  }
  return best;
}

/** Natural-log softmax of each row of a row-major [rows, vocab] float32 logits matrix, in float64. */
export function logSoftmaxRows(logits: Float32Array, vocab: number): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let r = 0; r < logits.length / vocab; r++) rows.push(logSoftmax(Float64Array.from(logits.subarray(r * vocab, (r + 1) * vocab))));
  return rows;
}
