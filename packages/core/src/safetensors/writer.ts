import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, DTYPES, numel, type DType, type TypedArray } from '../tensor/dtype.js';
import { ARRAY_TYPES, IO_CHUNK_BYTES, isUnicode, type HeaderEntry } from './format.js';

/** One tensor to write. `data` may be a function, called when the tensor is written, so only one is in memory at a time. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** BF16/F16 as Uint16Array bit patterns, I64 as BigInt64Array, BOOL as Uint8Array. */
  data: TypedArray | (() => Promise<TypedArray> | TypedArray);
}

/**
 * Writes one safetensors file atomically (temp file, fsync, rename): tensors in entry order with contiguous
 * data_offsets, header padded with spaces to 8-byte alignment.
 */
export async function writeSafetensors(file: string, entries: TensorEntry[], metadata?: Record<string, string>): Promise<void> {
  const header = buildHeader(file, entries, metadata);
  await writeAtomically(file, async (handle) => {
    await writeAll(handle, header);
    for (const entry of entries) {
      const data = typeof entry.data === 'function' ? await entry.data() : entry.data;
      checkData(file, entry, data);
      await writeAll(handle, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  });
}

/**
 * Splits `entries` in order into shards of at most `maxShardBytes` (a tensor larger than that gets a shard of
 * its own) named `model-00001-of-0000N.safetensors`, plus `model.safetensors.index.json`. When everything
 * fits in one shard, writes `model.safetensors` only. Returns the file names written, index last.
 */
export async function writeShardedSafetensors(
  dir: string,
  entries: TensorEntry[],
  options: { maxShardBytes: number; metadata?: Record<string, string> },
): Promise<string[]> {
  if (!(options.maxShardBytes > 0)) {
    throw new RangeError(`writeShardedSafetensors: maxShardBytes must be positive, got ${options.maxShardBytes}`);
  }
  await mkdir(dir, { recursive: true });
  const shards: TensorEntry[][] = [];
  let current: TensorEntry[] = [];
  let currentBytes = 0;
  for (const entry of entries) {
    const bytes = byteLength(dir, entry);
    if (current.length > 0 && currentBytes + bytes > options.maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(entry);
    currentBytes += bytes;
  }
  shards.push(current);

  if (shards.length === 1) {
    await writeSafetensors(path.join(dir, 'model.safetensors'), entries, options.metadata);
    return ['model.safetensors'];
  }
  const writer = new ShardedSafetensorsWriter(dir, shards.length, options.metadata);
  const names: string[] = [];
  for (const shard of shards) names.push(await writer.writeShard(shard));
  names.push(await writer.finish());
  return names;
}

/**
 * Writes a sharded checkpoint one shard at a time, for producers that make its tensors in sequence (a quantizer
 * going layer by layer): `model-0000i-of-0000N.safetensors` files, each atomic, then `model.safetensors.index.json`.
 */
export class ShardedSafetensorsWriter {
  private readonly weightMap: Record<string, string> = {};
  private totalSize = 0;
  private written = 0;

  constructor(
    readonly dir: string,
    readonly shardCount: number,
    private readonly metadata?: Record<string, string>,
  ) {}

  /** Writes the next shard and returns its file name. */
  async writeShard(entries: TensorEntry[]): Promise<string> {
    if (this.written >= this.shardCount) throw new RangeError(`${this.dir}: all ${this.shardCount} shards are written already`);
    const count = String(this.shardCount).padStart(5, '0');
    const name = `model-${String(this.written + 1).padStart(5, '0')}-of-${count}.safetensors`;
    await mkdir(this.dir, { recursive: true });
    await writeSafetensors(path.join(this.dir, name), entries, this.metadata);
    for (const entry of entries) {
      this.weightMap[entry.name] = name;
      this.totalSize += byteLength(this.dir, entry);
    }
    this.written++;
    return name;
  }

  /** Writes the index (atomically) once every shard is written; returns its file name. */
  async finish(): Promise<string> {
    if (this.written !== this.shardCount) {
      throw new RangeError(`${this.dir}: ${this.written} of ${this.shardCount} shards written; the index would point at missing files`);
    }
    const sortedMap = Object.fromEntries(Object.keys(this.weightMap).sort().map((k) => [k, this.weightMap[k]]));
    const index = `${JSON.stringify({ metadata: { total_size: this.totalSize }, weight_map: sortedMap }, null, 2)}\n`;
    const indexName = 'model.safetensors.index.json';
    await writeAtomically(path.join(this.dir, indexName), (handle) => writeAll(handle, Buffer.from(index, 'utf8')));
    return indexName;
  }
}

/** The 8-byte length, the JSON header and its space padding, validating names, dtypes and shapes. */
function buildHeader(file: string, entries: TensorEntry[], metadata: Record<string, string> | undefined): Buffer {
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (metadata) {
    const bad = Object.entries(metadata).find(([k, v]) => typeof v !== 'string' || !isUnicode(k) || !isUnicode(v));
    if (bad) throw new CheckpointError(`${file}: metadata entry '${bad[0]}' is not a string of valid Unicode`, file);
    header.__metadata__ = metadata;
  }
  const names = new Set<string>();
  let offset = 0;
  for (const entry of entries) {
    if (entry.name === '__metadata__' || names.has(entry.name)) {
      throw new CheckpointError(`${file}: tensor name '${entry.name}' is duplicated or reserved`, file, entry.name);
    }
    if (!isUnicode(entry.name)) {
      // JSON.stringify would write it as a `\ud800` escape, which safetensors readers reject.
      throw new CheckpointError(`${file}: tensor name '${entry.name}' has a lone UTF-16 surrogate (not valid Unicode)`, file, entry.name);
    }
    names.add(entry.name);
    const end = offset + byteLength(file, entry);
    header[entry.name] = { dtype: entry.dtype, shape: entry.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = json.length + ((8 - ((8 + json.length) % 8)) % 8);
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

function byteLength(file: string, entry: TensorEntry): number {
  if (!(DTYPES as readonly string[]).includes(entry.dtype)) {
    throw new CheckpointError(`${file}: tensor '${entry.name}' has unknown dtype '${entry.dtype}'`, file, entry.name);
  }
  if (!entry.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    const message = `${file}: tensor '${entry.name}': shape [${entry.shape.join(', ')}] is not non-negative integers`;
    throw new CheckpointError(message, file, entry.name);
  }
  return numel(entry.shape) * DTYPE_BYTES[entry.dtype];
}

function checkData(file: string, entry: TensorEntry, data: TypedArray): void {
  const expectedType = ARRAY_TYPES[entry.dtype];
  const expectedLength = numel(entry.shape);
  if (!(data instanceof expectedType) || data.length !== expectedLength) {
    throw new CheckpointError(
      `${file}: tensor '${entry.name}' (${entry.dtype} [${entry.shape.join(', ')}]) needs a ${expectedType.name} of ` +
        `${expectedLength} elements, got a ${data.constructor.name} of ${data.length}`,
      file,
      entry.name,
    );
  }
}

/** Writes to `${file}.tmp-<pid>-<random>`, fsyncs and renames over `file`; removes the temp file on any error. */
async function writeAtomically(file: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'wx');
    await write(handle);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, file);
  } catch (e) {
    await handle?.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(bytes.length - done, IO_CHUNK_BYTES));
    done += bytesWritten;
  }
}
