/**
 * Golden Stick's deploy-time numerics for a static A8W8 linear (reference/golden-stick.md §2,
 * hal.py QuantWithSmoothHighPerformance / AllQuantMatmulHighPerformance / AllQuantMatmul._correction_into_bias) and
 * the float16 / bfloat16 roundings they go through. Layout-free: golden-stick.ts names and writes the results.
 */
import { roundBf16 } from '@qllm/core';
import { roundHalfEven } from './quant-math.js';

/** x rounded to bfloat16 (through float32, ties to even), as a number. */
export const toBf16 = roundBf16;

/** x rounded to IEEE float16 (ties to even; subnormals kept; past 65504 + half an ulp → ±Infinity), as a number. */
export function toFp16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const quantum = 2 ** (Math.max(e, -14) - 10);
  const r = roundHalfEven(a / quantum) * quantum;
  return Math.sign(x) * (r > 65504 ? Infinity : r);
}

/**
 * Symmetric int8 per output channel of the (smoothed) weight, Golden Stick's way: w_scale[n] = 2·absmax[n]/255 in
 * float64, q = clamp(round_half_even(W/w_scale), −128, 127). An all-zero row gets scale 1.
 */
export function quantizeWeightGoldenStick(
  w: Float32Array, rows: number, cols: number, roundScale: (s: number) => number = (s) => s,
): { q: Int8Array; scale: Float64Array } {
  const q = new Int8Array(w.length);
  const scale = new Float64Array(rows);
  for (let n = 0; n < rows; n++) {
    let absmax = 0;
    for (let k = 0; k < cols; k++) absmax = Math.max(absmax, Math.abs(w[n * cols + k]!));
    const s = absmax === 0 ? 1 : roundScale((2 * absmax) / 255);
    scale[n] = s;
    for (let k = 0; k < cols; k++) q[n * cols + k] = Math.min(127, Math.max(-128, roundHalfEven(w[n * cols + k]! / s)));
  }
  return { q, scale };
}

/**
 * Golden Stick's fused per-channel input scale (QuantWithSmoothHighPerformance): fp16(x_scale) / fp16(1/s[k]),
 * computed in float16 and stored in bf16. Where fp16(1/s) overflows (s < ~1.5e-5) or the quotient is 0 or infinite,
 * x_scale·s[k] in float64 instead (counted in fp16Fallback). Absent s: 1.
 */
export function goldenStickInputScale(xScale: number, s: ArrayLike<number> | undefined, cols: number): { inputScale: Float32Array; fp16Fallback: number } {
  const inputScale = new Float32Array(cols);
  let fp16Fallback = 0;
  const xs16 = toFp16(xScale);
  for (let k = 0; k < cols; k++) {
    const sk = s?.[k] ?? 1;
    const v = toFp16(xs16 / toFp16(1 / sk));
    if (v > 0 && Number.isFinite(v)) inputScale[k] = toBf16(v);
    else {
      inputScale[k] = toBf16(xScale * sk);
      fp16Fallback++;
    }
  }
  return { inputScale, fp16Fallback };
}

/** The deployed parameters of one static linear. */
export interface GoldenStickStatic {
  /** bf16 values, per input channel: x_scale · s[k]. */
  inputScale: Float32Array;
  /** int8, x_zp tiled to every input channel. */
  inputZp: Int8Array;
  /** int32 per output channel: −x_zp·Σ_k qW[n,k] rounded through bf16 (Golden Stick's "align precision"). */
  quantBias: Int32Array;
  /** float32 per output channel: fp32(x_scale) · fp32(w_scale[n]). */
  dequantScale: Float32Array;
}

/**
 * From the quantized weight (q, w_scale), the per-tensor activation parameters of the smoothed input (x_scale, x_zp)
 * and the smoothing factors s (undefined: 1):
 *   input_scale[k]   = bf16(fp32(x_scale) · s[k])   (s from quantizeLayer: this is Golden Stick's float16 value)
 *   quant_bias[n]    = round( bf16(q_corr[n]·deq[n]) / fp32(deq[n]) ),  q_corr[n] = −x_zp·Σ_k qW[n,k], deq = x_scale·w_scale[n]
 *   dequant_scale[n] = fp32(fp32(x_scale) · fp32(w_scale[n]))
 */
export function goldenStickStatic(
  q: Int8Array, wScale: Float64Array, rows: number, cols: number,
  act: { scale: number; zeroPoint: number }, smoothing: ArrayLike<number> | undefined,
): GoldenStickStatic {
  const xs = Math.fround(act.scale);
  const inputScale = Float32Array.from({ length: cols }, (_, k) => toBf16(xs * (smoothing?.[k] ?? 1)));
  const inputZp = new Int8Array(cols).fill(act.zeroPoint);
  const quantBias = new Int32Array(rows);
  const dequantScale = new Float32Array(rows);
  for (let n = 0; n < rows; n++) {
    let sum = 0;
    for (let k = 0; k < cols; k++) sum += q[n * cols + k]!;
    const qCorr = -act.zeroPoint * sum;
    const deq = act.scale * wScale[n]!;
    quantBias[n] = roundHalfEven(Math.fround(toBf16(qCorr * deq) / Math.fround(deq)));
    dequantScale[n] = Math.fround(xs * Math.fround(wScale[n]!));
  }
  return { inputScale, inputZp, quantBias, dequantScale };
}
