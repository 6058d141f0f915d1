/**
 * The int8 GEMM of a quantized linear, lowered to onnxruntime ops in the integer form the backend runs exactly:
 *
 *   y[m, n] = s_a[m] · s_w[n] · Σ_k (q[m, k] − z_a) · W[n, k]
 *
 * q are the activations quantized to int8 — statically (one scale s_a and zero point z_a for the tensor) or
 * dynamically per token (s_a[m] = max_k |x[m, k]| / 127, z_a = 0) — and W the int8 weights. The quantization
 * method states this math; the form (which integer types reach MatMulIntegerToFloat) is the backend's choice, so
 * every form computes the same integers: uint8 activations are int8 + 128 with the zero point moved by 128, uint8
 * weights are int8 + 128 with a weight zero point of 128.
 */
import type { Int8GemmForm } from '../backend/v1/backend-v1.js';
import type { GraphBuilder } from './graph-builder.js';

/** Static per-tensor activation quantization: a float32 scalar initializer and a logical int8 zero point. */
export interface StaticInt8Activation {
  scale: string;
  /** Base name for the zero-point initializer, and its logical int8 value (read when the model is built). */
  zeroPoint: { name: string; value: () => Promise<number> };
}

export interface Int8MatMulSpec {
  /** Float activations [tokens, in]. */
  x: string;
  /** How x becomes int8. */
  activation: StaticInt8Activation | 'per-token';
  /**
   * The int8 weight laid out [in, out] (Wᵀ, as the kernel wants it): an initializer name and its producer, which
   * hands over an array of its own (the u8u8 form rewrites it in place rather than holding a second copy).
   */
  weight: { name: string; shape: [number, number]; data: () => Promise<Int8Array> };
  /** float32 [out]: the per-output-channel weight scales s_w. */
  weightScale: string;
  /**
   * x may have no rows (the head in a prefill chunk that wants no logits): onnxruntime's ReduceMax leaves an empty
   * input unreduced, so the per-token scale is reshaped to [rows, 1] (one more kernel; only where it can happen).
   */
  mayBeEmpty?: boolean;
}

const MS = { domain: 'com.microsoft' };
const TO_UINT8 = 2;
const TO_INT8 = 3;

/** Emits y = s_a · s_w · ((q − z_a) · Wᵀ) in `form`. */
export function emitInt8MatMul(g: GraphBuilder, form: Int8GemmForm, spec: Int8MatMulSpec): string {
  const signedActivations = form === 's8s8';
  const { x, activation } = spec;
  const [K, N] = spec.weight.shape;
  const weight = form === 'u8u8'
    ? g.initializer(`${spec.weight.name}.u8`, 'uint8', [K, N], async () => shiftToUint8InPlace(await spec.weight.data()))
    : g.initializer(spec.weight.name, 'int8', [K, N], spec.weight.data);
  const weightZero = form === 'u8u8' ? [g.constant('uint8', [], [128], 'w_zero_point')] : [];

  if (activation === 'per-token') {
    const reduced = g.op('ReduceMax', [g.op('Abs', [x]), g.ints([-1])], { keepdims: 1 }); // [S, 1]
    const rowMax = spec.mayBeEmpty ? g.op('Reshape', [reduced, g.ints([-1, 1])]) : reduced;
    // A zero row gets a tiny scale, so it quantizes to 0 rather than NaN.
    const scale = g.op('Max', [g.op('Div', [rowMax, g.scalar(127)]), g.scalar(1e-30)]);
    const rounded = g.op('Round', [g.op('Div', [x, scale])]); // in [-127, 127]
    const q = signedActivations
      ? g.op('Cast', [rounded], { to: TO_INT8 })
      : g.op('Cast', [g.op('Add', [rounded, g.scalar(128)])], { to: TO_UINT8 });
    const aZero = g.constant(signedActivations ? 'int8' : 'uint8', [], [signedActivations ? 0 : 128], 'a_zero_point');
    const y = g.op('MatMulIntegerToFloat', [q, weight, g.scalar(1), spec.weightScale, aZero, ...weightZero], {}, MS);
    return g.op('Mul', [y, scale]);
  }

  const zp = activation.zeroPoint;
  const aZero = signedActivations
    ? g.initializer(`${zp.name}.s8`, 'int8', [], async () => Int8Array.of(await zp.value()))
    : g.initializer(`${zp.name}.u8`, 'uint8', [], async () => Uint8Array.of((await zp.value()) + 128));
  const q = g.op('QuantizeLinear', [x, activation.scale, aZero]);
  return g.op('MatMulIntegerToFloat', [q, weight, activation.scale, spec.weightScale, aZero, ...weightZero], {}, MS);
}

/** int8 → uint8 + 128 (flipping the sign bit), in place; returns the same bytes as uint8. */
function shiftToUint8InPlace(w: Int8Array): Uint8Array {
  const bytes = new Uint8Array(w.buffer, w.byteOffset, w.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! ^ 0x80;
  return bytes;
}
