// The GGUF container (version 3, little-endian), as ggml's docs/gguf.md specifies it: a header (magic, version,
// tensor count, key-value count), the key-value metadata, one info record per tensor (name, dims innermost first,
// ggml type, offset into the data section), padding to the alignment, then the tensor data, each tensor starting at
// an aligned offset.

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
/** `general.alignment` when the file does not say: tensor data offsets are multiples of it. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** gguf_type: the type of a metadata value. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** The ggml tensor types this writer produces (ggml_type ids). */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** llama_ftype, written as `general.file_type`: what most of the tensors are. */
export const LlamaFileType = { ALL_F32: 0, MOSTLY_F16: 1, MOSTLY_Q8_0: 7 } as const;

/** llama.cpp's token types (`tokenizer.ggml.token_type`). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Q8_0: blocks of 32 values along the innermost dimension, each an f16 scale then 32 int8. */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** A metadata value, typed as it is written. Arrays hold one scalar type. */
export type GgufValue =
  | { type: 'uint32' | 'int32' | 'float32'; value: number }
  | { type: 'uint64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'int32' | 'uint32' | 'float32'; value: ArrayLike<number> };

export const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
export const i32 = (value: number): GgufValue => ({ type: 'int32', value });
export const f32 = (value: number): GgufValue => ({ type: 'float32', value });
export const bool = (value: boolean): GgufValue => ({ type: 'bool', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });
export const strings = (value: readonly string[]): GgufValue => ({ type: 'array', itemType: 'string', value });
export const i32s = (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'int32', value });

/** One tensor as the file describes it: `dims` in ggml order (ne0, the innermost, first). */
export interface GgufTensorInfo {
  name: string;
  dims: readonly number[];
  type: GgmlTypeName;
}

export function numel(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Bytes of a tensor's data (without padding). */
export function tensorBytes({ name, dims, type }: GgufTensorInfo): number {
  const n = numel(dims);
  switch (type) {
    case 'F32': return 4 * n;
    case 'F16': return 2 * n;
    case 'Q8_0':
      if (dims[0]! % Q8_0_BLOCK !== 0) throw new RangeError(`tensor '${name}': Q8_0 needs a row length (ne0 = ${dims[0]}) divisible by ${Q8_0_BLOCK}`);
      return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Appends little-endian GGUF primitives to a list of chunks. */
class ByteSink {
  readonly chunks: Buffer[] = [];
  private current = Buffer.alloc(1 << 16);
  private at = 0;
  length = 0;

  private room(n: number): void {
    if (this.at + n <= this.current.length) return;
    this.flush();
    if (n > this.current.length) this.current = Buffer.alloc(n);
  }

  flush(): void {
    if (this.at > 0) this.chunks.push(Buffer.from(this.current.subarray(0, this.at)));
    this.current = Buffer.alloc(this.current.length);
    this.at = 0;
  }

  u32(v: number): void {
    this.room(4);
    this.current.writeUInt32LE(v, this.at);
    this.at += 4;
    this.length += 4;
  }

  i32(v: number): void {
    this.room(4);
    this.current.writeInt32LE(v, this.at);
    this.at += 4;
    this.length += 4;
  }

  f32(v: number): void {
    this.room(4);
    this.current.writeFloatLE(v, this.at);
    this.at += 4;
    this.length += 4;
  }

  u64(v: number | bigint): void {
    this.room(8);
    this.current.writeBigUInt64LE(BigInt(v), this.at);
    this.at += 8;
    this.length += 8;
  }

  u8(v: number): void {
    this.room(1);
    this.current[this.at++] = v;
    this.length += 1;
  }

  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.room(bytes.length);
    bytes.copy(this.current, this.at);
    this.at += bytes.length;
    this.length += bytes.length;
  }
}

const SCALAR_TYPE_IDS = {
  uint32: GgufValueType.UINT32,
  int32: GgufValueType.INT32,
  float32: GgufValueType.FLOAT32,
  uint64: GgufValueType.UINT64,
  bool: GgufValueType.BOOL,
  string: GgufValueType.STRING,
} as const;

function checkScalar(key: string, type: 'uint32' | 'int32' | 'float32', v: number): void {
  const ok =
    type === 'uint32' ? Number.isInteger(v) && v >= 0 && v <= 0xffffffff
    : type === 'int32' ? Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31
    : Number.isFinite(v);
  if (!ok) throw new RangeError(`GGUF metadata '${key}': ${v} is not a valid ${type}`);
}

function writeScalar(sink: ByteSink, key: string, type: 'uint32' | 'int32' | 'float32', v: number): void {
  checkScalar(key, type, v);
  if (type === 'uint32') sink.u32(v);
  else if (type === 'int32') sink.i32(v);
  else sink.f32(v);
}

function writeValue(sink: ByteSink, key: string, v: GgufValue): void {
  switch (v.type) {
    case 'uint32':
    case 'int32':
    case 'float32':
      sink.u32(SCALAR_TYPE_IDS[v.type]);
      writeScalar(sink, key, v.type, v.value);
      return;
    case 'uint64':
      sink.u32(GgufValueType.UINT64);
      sink.u64(v.value);
      return;
    case 'bool':
      sink.u32(GgufValueType.BOOL);
      sink.u8(v.value ? 1 : 0);
      return;
    case 'string':
      sink.u32(GgufValueType.STRING);
      sink.string(v.value);
      return;
    case 'array':
      sink.u32(GgufValueType.ARRAY);
      sink.u32(SCALAR_TYPE_IDS[v.itemType]);
      sink.u64(v.value.length);
      if (v.itemType === 'string') {
        for (const s of v.value as readonly string[]) sink.string(s);
      } else {
        const items = v.value as ArrayLike<number>;
        for (let i = 0; i < items.length; i++) writeScalar(sink, key, v.itemType, items[i]!);
      }
      return;
  }
}

/** A tensor's placement in the data section. */
export interface PlacedTensor extends GgufTensorInfo {
  /** Offset from the start of the data section (a multiple of the alignment). */
  offset: number;
  bytes: number;
}

/**
 * Encodes everything before the tensor data: header, metadata, tensor infos, and the padding up to the data section.
 * Returns the bytes and where each tensor's data goes.
 */
export function encodeHeader(
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensorInfo[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): { header: Buffer; placed: PlacedTensor[]; dataBytes: number } {
  const names = new Set<string>();
  const placed: PlacedTensor[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`GGUF: tensor '${t.name}' is listed twice`);
    names.add(t.name);
    const bytes = tensorBytes(t);
    placed.push({ ...t, offset, bytes });
    offset = alignUp(offset + bytes, alignment);
  }

  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(tensors.length);
  sink.u64(metadata.size);
  for (const [key, value] of metadata) {
    sink.string(key);
    writeValue(sink, key, value);
  }
  for (const t of placed) {
    sink.string(t.name);
    sink.u32(t.dims.length);
    for (const d of t.dims) sink.u64(d);
    sink.u32(GgmlType[t.type]);
    sink.u64(t.offset);
  }
  const padding = alignUp(sink.length, alignment) - sink.length;
  for (let i = 0; i < padding; i++) sink.u8(0);
  sink.flush();
  return { header: Buffer.concat(sink.chunks), placed, dataBytes: offset };
}
