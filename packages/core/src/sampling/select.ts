/**
 * Partial selection of the k largest logits with a bounded min-heap: one pass over the vocabulary, O(V + m log k)
 * where m (heap replacements) is small in practice. Order is by value descending, then index ascending; NaN is skipped.
 */
export interface TopKHeap {
  /** Heap slots [0, size): indices and their values; slot 0 is the worst kept entry. */
  readonly ids: Int32Array;
  readonly values: Float64Array;
  readonly size: number;
}

/** Builds the heap of the `k` best entries of `logits` (fewer if `logits` has fewer non-NaN values). */
export function topKHeap(logits: Float32Array, k: number): TopKHeap {
  const cap = Math.max(0, Math.min(k, logits.length));
  const ids = new Int32Array(cap);
  const values = new Float64Array(cap);
  let size = 0;
  const n = logits.length;
  let i = 0;
  // Fill: push and sift up. A later index with an equal value is worse, so it rises above the parent.
  for (; i < n && size < cap; i++) {
    const v = logits[i]!;
    if (v !== v) continue;
    let j = size++;
    while (j > 0) {
      const p = (j - 1) >> 1;
      const pv = values[p]!;
      if (!(v < pv || (v === pv && i > ids[p]!))) break;
      ids[j] = ids[p]!;
      values[j] = pv;
      j = p;
    }
    ids[j] = i;
    values[j] = v;
  }
  // Scan: only a strictly greater value beats the root (an equal value has a larger index, so it is worse).
  if (size > 0) {
    let root = values[0]!;
    for (; i < n; i++) {
      const v = logits[i]!;
      if (v > root) {
        siftDownReplace(ids, values, size, i, v);
        root = values[0]!;
      }
    }
  }
  return { ids, values, size };
}

function siftDownReplace(ids: Int32Array, values: Float64Array, size: number, id: number, v: number): void {
  let j = 0;
  for (;;) {
    const l = 2 * j + 1;
    if (l >= size) break;
    let c = l;
    const r = l + 1;
    if (r < size) {
      const lv = values[l]!;
      const rv = values[r]!;
      if (rv < lv || (rv === lv && ids[r]! > ids[l]!)) c = r;
    }
    const cv = values[c]!;
    if (!(cv < v || (cv === v && ids[c]! > id))) break;
    ids[j] = ids[c]!;
    values[j] = cv;
    j = c;
  }
  ids[j] = id;
  values[j] = v;
}

/** Indices of the `k` largest logits, best first (ties: lower index first). */
export function topKIndices(logits: Float32Array, k: number): Int32Array {
  const { ids, values, size } = topKHeap(logits, k);
  const order = Array.from({ length: size }, (_, j) => j);
  order.sort((a, b) => values[b]! - values[a]! || ids[a]! - ids[b]!);
  return Int32Array.from(order, (j) => ids[j]!);
}
