// Element conversions for the GGUF writer: a stored tensor's elements (BF16, F16 or F32) to F32, F16 or Q8_0
// bytes, one row range at a time so that no second full-size copy of a large tensor is held.
import { bf16ToF32, f16ToF32, f32ToF16, type HostTensor } from '@qllm/core';
import { Q8_0_BLOCK, Q8_0_BLOCK_BYTES, type GgmlTypeName } from './format.js';

let bf16ToF16Table: Uint16Array | undefined;

/** bf16 bit pattern → f16 bit pattern (round to nearest even; past f16's range → ±inf), for all 65536 patterns. */
function bf16ToF16Lut(): Uint16Array {
  if (!bf16ToF16Table) {
    const all = new Uint16Array(65536);
    for (let i = 0; i < all.length; i++) all[i] = i;
    bf16ToF16Table = f32ToF16(bf16ToF32(all));
  }
  return bf16ToF16Table;
}

/** Largest finite float16. */
const F16_MAX = 65504;

/** Float elements [start, end) of a BF16, F16 or F32 tensor, as float32. */
function slice32(t: HostTensor, start: number, end: number): Float32Array {
  switch (t.dtype) {
    case 'BF16': return bf16ToF32((t.data as Uint16Array).subarray(start, end));
    case 'F16': return f16ToF32((t.data as Uint16Array).subarray(start, end));
    case 'F32': return (t.data as Float32Array).subarray(start, end);
    default: throw new TypeError(`not a float dtype: ${t.dtype}`);
  }
}

/** Elements [start, end) as float16 bit patterns; `overflow` is told of a finite value past float16's range. */
function slice16(t: HostTensor, start: number, end: number, overflow: (value: number) => void): Uint16Array {
  const out = new Uint16Array(end - start);
  if (t.dtype === 'F16') {
    out.set((t.data as Uint16Array).subarray(start, end));
    return out;
  }
  if (t.dtype === 'BF16') {
    const lut = bf16ToF16Lut();
    const src = (t.data as Uint16Array).subarray(start, end);
    for (let i = 0; i < src.length; i++) {
      const b = src[i]!;
      const h = lut[b]!;
      // A finite bf16 that became ±inf overflowed (exponent 0xff in bf16 is inf/NaN already).
      if ((h & 0x7fff) === 0x7c00 && (b & 0x7f80) !== 0x7f80) overflow(bf16ToF32(new Uint16Array([b]))[0]!);
      out[i] = h;
    }
    return out;
  }
  const x = slice32(t, start, end);
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i]!) > F16_MAX && Number.isFinite(x[i]!)) overflow(x[i]!);
  return f32ToF16(x, out);
}

/** C's roundf: halves away from zero. */
function roundAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Q8_0 as ggml's quantize_row_q8_0_ref computes it, in float32: per block of 32, d = max|x| / 127, q = roundf(x / d)
 * (as x · (1/d)), stored as the f16 of d then the 32 int8.
 */
export function quantizeQ8_0(x: Float32Array, out = new Uint8Array((x.length / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES)): Uint8Array {
  if (x.length % Q8_0_BLOCK !== 0) throw new RangeError(`Q8_0: ${x.length} values is not a whole number of ${Q8_0_BLOCK}-blocks`);
  const q = new Int8Array(out.buffer, out.byteOffset, out.byteLength);
  const scale = new Float32Array(1);
  const half = new Uint16Array(1);
  for (let b = 0, o = 0; b < x.length; b += Q8_0_BLOCK, o += Q8_0_BLOCK_BYTES) {
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    scale[0] = d;
    f32ToF16(scale, half);
    out[o] = half[0]! & 0xff;
    out[o + 1] = half[0]! >>> 8;
    // A float32 product is exact in float64, so fround(x · id) is float32's x * id.
    for (let j = 0; j < Q8_0_BLOCK; j++) q[o + 2 + j] = roundAway(Math.fround(x[b + j]! * id));
  }
  return out;
}

/** Elements per conversion step: bounds the scratch memory beside the tensor being converted. */
const CHUNK_ELEMENTS = 1 << 22;

/**
 * The tensor's elements as `type`, in chunks of whole rows (`rowLength` elements each), each handed to `write` in
 * order. Errors name the tensor.
 */
export async function convertTensor(
  name: string,
  t: HostTensor,
  type: GgmlTypeName,
  rowLength: number,
  write: (bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const n = t.data.length;
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / rowLength));
  const step = rowsPerChunk * rowLength;
  let overflowed: number | undefined;
  for (let start = 0; start < n; start += step) {
    const end = Math.min(n, start + step);
    let bytes: Uint8Array;
    if (type === 'F32') {
      const x = slice32(t, start, end);
      bytes = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    } else if (type === 'F16') {
      const h = slice16(t, start, end, (v) => (overflowed ??= v));
      bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    } else {
      const x = slice32(t, start, end);
      bytes = quantizeQ8_0(x);
    }
    if (overflowed !== undefined) {
      throw new RangeError(
        `tensor '${name}': value ${overflowed} is outside float16's range (±${F16_MAX}), so it cannot be written as F16`,
      );
    }
    await write(bytes);
  }
}
