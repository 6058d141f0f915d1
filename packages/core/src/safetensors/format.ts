import type { DType, TypedArray } from '../tensor/dtype.js';

/** The reference safetensors library refuses headers larger than this. */
export const MAX_HEADER_BYTES = 100_000_000;

type TypedArrayConstructor = {
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): TypedArray;
  readonly name: string;
};

/** The TypedArray class that holds each dtype (BF16/F16 as raw 16-bit patterns). */
export const ARRAY_TYPES: Record<DType, TypedArrayConstructor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/** Node's fs read/write calls take at most 2^31-1 bytes at a time; big tensors go in chunks of this size. */
export const IO_CHUNK_BYTES = 1 << 30;

/** The JSON header of a safetensors file as the writer lays it out and the reader validates it. */
export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/**
 * False for a string with a lone UTF-16 surrogate: it has no UTF-8 form, so JSON.stringify writes it as a `\ud800`
 * escape, which the reference reader (serde) rejects in a header.
 */
export function isUnicode(s: string): boolean {
  return !/\p{Cs}/u.test(s);
}
