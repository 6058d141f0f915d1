/**
 * SmoothQuant A8W8 numerics, following MindSpore Golden Stick (paths in mindspore-ai/golden-stick) and, where the
 * two agree, compressed-tensors. Weights are [out, in] row-major (PyTorch / Golden Stick `transpose_b` layout).
 * Integer range is [-128, 127] everywhere (Golden Stick's narrow_range = False).
 */

import { roundHalfEven } from '@qllm/core';

/** Round to nearest, ties to even (numpy / MindSpore `round`): core's, re-exported for this plugin's modules. */
export { roundHalfEven };

const clampInt8 = (v: number) => Math.min(127, Math.max(-128, v));

function checkShape(length: number, rows: number, cols: number, what: string): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0 || length !== rows * cols) {
    throw new RangeError(`${what}: ${length} values do not form a [${rows}, ${cols}] matrix`);
  }
}

/**
 * Per input column k of W [out, in]: w_max[k] = max(|max_n W[n,k]|, |min_n W[n,k]|) = max_n |W[n,k]|
 * (linear_smooth_wrappers.py `_calc_smooth_scale`).
 */
export function columnAbsMax(w: Float32Array, rows: number, cols: number): Float32Array {
  checkShape(w.length, rows, cols, 'columnAbsMax');
  const out = new Float32Array(cols);
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) out[k] = Math.max(out[k]!, Math.abs(w[n * cols + k]!));
  }
  return out;
}

/**
 * SmoothQuant factors per input channel (linear_smooth_wrappers.py `SmoothQuantLinearCell._calc_smooth_scale`):
 *   s[k] = clamp(act_max[k]^α / w_max[k]^(1−α), min = 1e-5)
 *   s[k] = 1 where act_max[k]^α == 0 or w_max[k]^(1−α) == 0
 * Computed in float64, returned as float32. Note 0^0 = 1, so α = 0 with act_max = 0 still gives 1 / w_max.
 */
export function smoothingFactors(actAbsMax: ArrayLike<number>, weightAbsMax: ArrayLike<number>, alpha: number): Float32Array {
  if (actAbsMax.length !== weightAbsMax.length) {
    throw new RangeError(`smoothingFactors: ${actAbsMax.length} activation maxima but ${weightAbsMax.length} weight maxima`);
  }
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`smoothingFactors: alpha ${alpha} is outside [0, 1]`);
  const s = new Float32Array(actAbsMax.length);
  for (let k = 0; k < s.length; k++) {
    const num = Math.pow(actAbsMax[k]!, alpha); // act_max^α
    const den = Math.pow(weightAbsMax[k]!, 1 - alpha); // w_max^(1−α)
    s[k] = num === 0 || den === 0 ? 1 : Math.max(num / den, 1e-5);
  }
  return s;
}

/**
 * Symmetric int8 per output channel (linear_weight_quant_wrappers.py → basic_quant_func.cal_quantization_params):
 *   absmax[n] = max(|min_k W[n,k]|, |max_k W[n,k]|)
 *   scale[n]  = 2·absmax[n] / 255        (not absmax/127; compressed-tensors' max_abs / (bit_range/2) is the same)
 *   q[n,k]    = clamp(round_half_even(W[n,k] / scale[n]), −128, 127), zero point 0
 * So the largest positive weight lands on 127.5 → 128 → clamped to 127, the largest negative on −128.
 * Reconstruction error |W − q·scale| ≤ scale/2; the clamped +absmax element may exceed that by the float32
 * rounding of the scale (at most 255·2⁻²⁴ of scale/2).
 * An all-zero row gets scale 1 (Golden Stick would divide by zero). Deviation: Golden Stick divides in the weight
 * dtype (bf16) by a float64 scale; here the scale is rounded to float32 first (the value a checkpoint stores) and the
 * division is done in float64, so q·scale is exactly what the runtime dequantizes to.
 */
export function quantizeWeightPerChannel(w: Float32Array, rows: number, cols: number): { q: Int8Array; scale: Float32Array } {
  checkShape(w.length, rows, cols, 'quantizeWeightPerChannel');
  const q = new Int8Array(w.length);
  const scale = new Float32Array(rows);
  for (let n = 0; n < rows; n++) {
    let absmax = 0;
    for (let k = 0; k < cols; k++) absmax = Math.max(absmax, Math.abs(w[n * cols + k]!));
    const s = absmax === 0 ? 1 : Math.fround((2 * absmax) / 255);
    scale[n] = s;
    for (let k = 0; k < cols; k++) q[n * cols + k] = clampInt8(roundHalfEven(w[n * cols + k]! / s));
  }
  return { q, scale };
}

/**
 * Static per-tensor asymmetric int8 activation parameters (linear_all_quant_wrappers.py `AllQuantLinearCell.quant`):
 *   x_scale = (max − min) / 255
 *   x_zp    = round_half_even(−128 − min / x_scale), clamped to [−128, 127]
 *   max == min → scale 1, zero point 0
 * Deviation: like compressed-tensors (calculate_qparams), [min, max] is first widened to contain 0 (min = min(min, 0),
 * max = max(max, 0)). Then 0 is exactly representable (it quantizes to zp), the zero point always fits in int8
 * (Golden Stick's would overflow for an all-positive range) and vLLM's asymmetric (azp) path sees what it expects.
 * For the usual ranges that straddle 0 nothing changes. After widening max == min only when both are 0.
 * The scale is returned rounded to float32 (the value a checkpoint stores), and the zero point uses that scale.
 */
export function staticActivationParams(min: number, max: number): { scale: number; zeroPoint: number } {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(`staticActivationParams: [${min}, ${max}] is not a finite range`);
  }
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  if (hi === lo) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((hi - lo) / 255);
  return { scale, zeroPoint: clampInt8(roundHalfEven(-128 - lo / scale)) };
}

/**
 * dequant(quant(x)) for static activations, as QuantV2 + the int8 matmul's zero-point correction compute it:
 *   q = clamp(round_half_even(x / scale) + zp, −128, 127);  x̂ = (q − zp)·scale
 * For x inside the calibrated range the error is at most scale / 2.
 */
export function fakeQuantStatic(x: Float32Array | Float64Array, scale: number, zeroPoint: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (clampInt8(roundHalfEven(x[i]! / scale) + zeroPoint) - zeroPoint) * scale;
  return out;
}

/**
 * dequant(quant(x)) for dynamic per-token activations (hal.py DynamicQuantCell = CANN DynamicQuant), per row t:
 *   s_t = max_k |x[t,k]| / 127;  x̂[t,k] = clamp(round_half_even(x[t,k] / s_t), −128, 127)·s_t
 * A zero row stays zero. Error at most s_t / 2. Computed in float64 (the runtime uses float32).
 */
export function fakeQuantPerToken(x: Float32Array | Float64Array, rows: number, cols: number): Float64Array {
  checkShape(x.length, rows, cols, 'fakeQuantPerToken');
  const out = new Float64Array(x.length);
  for (let t = 0; t < rows; t++) {
    let absmax = 0;
    for (let k = 0; k < cols; k++) absmax = Math.max(absmax, Math.abs(x[t * cols + k]!));
    if (absmax === 0) continue;
    const s = absmax / 127;
    for (let k = 0; k < cols; k++) out[t * cols + k] = clampInt8(roundHalfEven(x[t * cols + k]! / s)) * s;
  }
  return out;
}
