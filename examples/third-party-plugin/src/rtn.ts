/** Round-to-nearest int8, symmetric per output channel: the whole algorithm (no calibration data). */

export interface RtnResult {
  /** [rows, cols] row-major, in [−127, 127]. */
  q: Int8Array;
  /** [rows], float32: W[r, c] ≈ q[r, c] · scale[r]. */
  scale: Float32Array;
  /** ‖W − q·s‖ / ‖W‖ (Frobenius; 0 for an all-zero matrix). */
  relativeError: number;
}

/** Round half to even, as torch.round and numpy.round. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * q = clamp(round(W / s), −127, 127) with s = max|W_row| / 127 per row. A row of zeros (or one so small that its
 * scale underflows float32) gets s = 1 and q = 0. Throws a RangeError naming the row on NaN or ±Infinity.
 */
export function quantizeRowsRtn(w: Float32Array, rows: number, cols: number): RtnResult {
  if (w.length !== rows * cols) throw new RangeError(`${w.length} values, expected ${rows}×${cols}`);
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  let errSq = 0;
  let normSq = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = 0;
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(w[base + c]!);
      if (!(a <= Number.MAX_VALUE)) throw new RangeError(`row ${r} holds ${w[base + c]}, not a finite number`);
      if (a > max) max = a;
    }
    const s = Math.fround(max / 127) || 1;
    scale[r] = s;
    for (let c = 0; c < cols; c++) {
      const x = w[base + c]!;
      const v = Math.max(-127, Math.min(127, roundHalfEven(x / s)));
      q[base + c] = v;
      const d = x - Math.fround(v * s);
      errSq += d * d;
      normSq += x * x;
    }
  }
  return { q, scale, relativeError: normSq > 0 ? Math.sqrt(errSq / normSq) : 0 };
}
