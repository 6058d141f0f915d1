// Small deterministic PRNG helpers for test checkpoints: a 32-bit string hash, mulberry32 and normal samples
// written straight to bfloat16 bits, so no float32 copy of a big tensor is ever needed.

/** FNV-1a 32-bit hash of a string (used to give every tensor its own seed, independent of generation order). */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → bfloat16 bits, round to nearest even (finite inputs). */
export function toBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** Inverse standard-normal CDF, Acklam's rational approximation (relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

const tables = new Map<string, Uint16Array>();

/** 65536 equiprobable N(mean, std²) quantiles, (k + 0.5) / 65536, as bfloat16 bits. */
function quantileTable(std: number, mean: number): Uint16Array {
  const key = `${std}:${mean}`;
  let t = tables.get(key);
  if (!t) {
    t = new Uint16Array(65536);
    for (let k = 0; k < 65536; k++) t[k] = toBf16Bits(mean + std * normalQuantile((k + 0.5) / 65536));
    if (tables.size > 64) tables.clear();
    tables.set(key, t);
  }
  return t;
}

/**
 * `n` samples of N(mean, std²) as bfloat16 bits, deterministic in `seed`. Each 32-bit mulberry32 output gives two
 * 16-bit uniforms, each mapped through a table of 65536 equiprobable normal quantiles (so samples are exact
 * quantiles, already rounded to bf16, with tails cut at ±4.4σ — fine for random test weights, and ~20× faster than
 * Box–Muller, which matters for a 0.6B-parameter checkpoint). `multiplier(i)`, if given, scales sample i before
 * rounding to bf16.
 */
export function normalBf16(
  n: number,
  seed: number,
  std: number,
  mean = 0,
  multiplier?: (i: number) => number,
): Uint16Array {
  const table = quantileTable(std, mean);
  const out = new Uint16Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i += 2) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    t = (t ^ (t >>> 14)) >>> 0;
    out[i] = table[t & 0xffff]!;
    if (i + 1 < n) out[i + 1] = table[t >>> 16]!;
  }
  if (multiplier) {
    for (let i = 0; i < n; i++) {
      u32[0] = out[i]! << 16;
      out[i] = toBf16Bits(f32[0]! * multiplier(i));
    }
  }
  return out;
}
