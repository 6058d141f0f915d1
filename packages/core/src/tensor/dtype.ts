/** safetensors dtype strings (the subset qllm reads and writes). */
export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type DType = (typeof DTYPES)[number];

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export type TypedArray =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/**
 * A tensor in host memory. BF16 and F16 data is held as the raw 16-bit patterns in a Uint16Array;
 * I64 as BigInt64Array; BOOL as Uint8Array.
 */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bit patterns → float32 (exact). */
export function bf16ToF32(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  // Little-endian: a float32's high half is the bf16 pattern, its low half zero.
  const halves = new Uint16Array(dst.buffer, dst.byteOffset, dst.length * 2);
  for (let i = 0; i < src.length; i++) {
    halves[2 * i] = 0;
    halves[2 * i + 1] = src[i]!;
  }
  return dst;
}

/** float32 → bfloat16 bit patterns, round to nearest even; NaN stays NaN. */
export function f32ToBf16(src: ArrayLike<number>, dst = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i]!;
    const u = u32[0]!;
    if ((u & 0x7fffffff) > 0x7f800000) dst[i] = (u >>> 16) | 0x40;
    else dst[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return dst;
}

/** Round a number through bfloat16 (what storing it as BF16 and reading it back gives). */
export function roundBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return x;
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0]!;
}

/** IEEE half bit patterns → float32. */
export function f16ToF32(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) dst[i] = s * m * 2 ** -24;
    else if (e === 31) dst[i] = m ? NaN : s * Infinity;
    else dst[i] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return dst;
}

/** float32 → IEEE half bit patterns, round to nearest even. */
export function f32ToF16(src: ArrayLike<number>, dst = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i]!;
    const x = u32[0]!;
    const sign = (x >>> 16) & 0x8000;
    const e = (x >>> 23) & 0xff;
    let m = x & 0x7fffff;
    if (e === 0xff) { dst[i] = sign | 0x7c00 | (m ? 0x200 : 0); continue; }
    let he = e - 127 + 15;
    if (he >= 31) { dst[i] = sign | 0x7c00; continue; }
    if (he <= 0) {
      if (he < -10) { dst[i] = sign; continue; }
      m |= 0x800000;
      const shift = 14 - he;
      let hm = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && hm & 1)) hm++;
      dst[i] = sign | hm;
      continue;
    }
    let hm = m >>> 13;
    const rem = m & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && hm & 1)) { hm++; if (hm === 0x400) { hm = 0; he++; } }
    dst[i] = he >= 31 ? sign | 0x7c00 : sign | (he << 10) | hm;
  }
  return dst;
}

/** Any float tensor (F32, F16, BF16, F64) as float32. Throws for integer dtypes. */
export function toFloat32(t: HostTensor): Float32Array {
  switch (t.dtype) {
    case 'F32': return t.data as Float32Array;
    case 'BF16': return bf16ToF32(t.data as Uint16Array);
    case 'F16': return f16ToF32(t.data as Uint16Array);
    case 'F64': return Float32Array.from(t.data as Float64Array);
    default: throw new TypeError(`toFloat32: ${t.dtype} is not a float dtype`);
  }
}
