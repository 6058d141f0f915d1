import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../errors.js';
import type { HostTensor } from '../tensor/dtype.js';
import type { TensorInfo, TensorSource } from '../tensor/tensor-source.js';
import { ARRAY_TYPES, IO_CHUNK_BYTES, MAX_HEADER_BYTES } from './format.js';
import { parseHeader, type StoredTensor } from './header.js';

const INDEX_FILE = 'model.safetensors.index.json';
const SINGLE_FILE = 'model.safetensors';

/**
 * One safetensors file. `open` reads and validates only the header; `read` fetches one tensor's bytes by offset.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly metadata: Record<string, string>,
    private readonly handle: FileHandle,
    private readonly dataStart: number,
    private readonly entries: Map<string, StoredTensor>,
  ) {}

  static async open(file: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (e) {
      throw openError(file, e);
    }
    try {
      const size = (await handle.stat()).size;
      if (size < 8) throw fileError(file, `file is ${size} bytes, shorter than the 8-byte header length`);
      const prefix = Buffer.alloc(8);
      await readFully(handle, prefix, 0, file, 'header length');
      const headerBytes = prefix.readBigUInt64LE(0);
      if (headerBytes > BigInt(size - 8)) {
        throw fileError(
          file,
          `header length ${headerBytes} runs past the end of the file (${size} bytes); truncated or not a safetensors file`,
        );
      }
      if (headerBytes > BigInt(MAX_HEADER_BYTES)) {
        throw fileError(file, `header is ${headerBytes} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const n = Number(headerBytes);
      const header = Buffer.alloc(n);
      await readFully(handle, header, 8, file, 'header');
      const { metadata, tensors } = parseHeader(file, header, size - 8 - n);
      return new SafetensorsFile(file, metadata, handle, 8 + n, tensors);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** In header order. */
  tensors(): TensorInfo[] {
    return [...this.entries.values()].map((e) => ({ ...e.info, shape: [...e.info.shape] }));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const { info } = this.entry(name);
    return { ...info, shape: [...info.shape] };
  }

  /** Reads exactly this tensor's bytes into a fresh (so correctly aligned) buffer. */
  async read(name: string): Promise<HostTensor> {
    const { info, begin, end } = this.entry(name);
    const buffer = new ArrayBuffer(end - begin);
    await readFully(this.handle, new Uint8Array(buffer), this.dataStart + begin, this.path, `tensor '${name}'`, name);
    return { dtype: info.dtype, shape: [...info.shape], data: new ARRAY_TYPES[info.dtype](buffer) };
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private entry(name: string): StoredTensor {
    const entry = this.entries.get(name);
    if (!entry) throw new CheckpointError(`${this.path}: tensor '${name}' not found`, this.path, name);
    return entry;
  }
}

/**
 * A Hugging Face checkpoint: a single safetensors file, or a folder holding `model.safetensors` or
 * `model.safetensors.index.json` plus its shards. All files are opened (headers validated) by `open`.
 */
export class Checkpoint implements TensorSource {
  private constructor(
    /** The path given to `open` (a folder or a file). */
    readonly path: string,
    private readonly files: SafetensorsFile[],
    private readonly owners: Map<string, SafetensorsFile>,
  ) {}

  static async open(pathOrDir: string): Promise<Checkpoint> {
    let isDir: boolean;
    try {
      isDir = (await stat(pathOrDir)).isDirectory();
    } catch (e) {
      throw openError(pathOrDir, e, 'checkpoint');
    }
    if (!isDir) return Checkpoint.fromFiles(pathOrDir, [pathOrDir]);
    const indexPath = path.join(pathOrDir, INDEX_FILE);
    if (await exists(indexPath)) return Checkpoint.fromIndex(pathOrDir, indexPath);
    const single = path.join(pathOrDir, SINGLE_FILE);
    if (await exists(single)) return Checkpoint.fromFiles(pathOrDir, [single]);
    throw new CheckpointError(`no ${SINGLE_FILE} or ${INDEX_FILE} in ${pathOrDir}`, pathOrDir);
  }

  names(): string[] {
    return [...this.owners.keys()];
  }

  /** The safetensors files it reads (what a cache of anything derived from it must be keyed on). */
  filePaths(): string[] {
    return this.files.map((f) => f.path);
  }

  has(name: string): boolean {
    return this.owners.has(name);
  }

  info(name: string): TensorInfo {
    return this.owner(name).info(name);
  }

  async read(name: string): Promise<HostTensor> {
    return this.owner(name).read(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  private owner(name: string): SafetensorsFile {
    const file = this.owners.get(name);
    if (!file) throw new CheckpointError(`tensor '${name}' not found in ${this.path}`, this.path, name);
    return file;
  }

  private static async fromIndex(dir: string, indexPath: string): Promise<Checkpoint> {
    const weightMap = await readWeightMap(indexPath);
    const shards = [...new Set(Object.values(weightMap))];
    for (const shard of shards) {
      if (!(await exists(path.join(dir, shard)))) {
        throw new CheckpointError(`${indexPath}: shard '${shard}' listed in weight_map is missing from ${dir}`, indexPath);
      }
    }
    const checkpoint = await Checkpoint.fromFiles(dir, shards.map((s) => path.join(dir, s)));
    for (const [tensor, shard] of Object.entries(weightMap)) {
      if (checkpoint.owners.get(tensor)?.path !== path.join(dir, shard)) {
        await checkpoint.close();
        throw new CheckpointError(
          `${indexPath}: weight_map puts tensor '${tensor}' in shard '${shard}', but that shard lacks it`,
          indexPath,
          tensor,
        );
      }
    }
    return checkpoint;
  }

  private static async fromFiles(root: string, paths: string[]): Promise<Checkpoint> {
    const files: SafetensorsFile[] = [];
    const owners = new Map<string, SafetensorsFile>();
    try {
      for (const p of paths) {
        const file = await SafetensorsFile.open(p);
        files.push(file);
        for (const { name } of file.tensors()) {
          const other = owners.get(name);
          if (other) throw new CheckpointError(`${root}: tensor '${name}' is in both ${other.path} and ${p}`, p, name);
          owners.set(name, file);
        }
      }
    } catch (e) {
      await Promise.all(files.map((f) => f.close()));
      throw e;
    }
    return new Checkpoint(root, files, owners);
  }
}

async function readWeightMap(indexPath: string): Promise<Record<string, string>> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    const message = `${indexPath}: not a valid index JSON (${(e as Error).message})`;
    throw new CheckpointError(message, indexPath, undefined, { cause: e });
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError(`${indexPath}: 'weight_map' must be an object mapping tensor names to shard files`, indexPath);
  }
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      throw new CheckpointError(
        `${indexPath}: weight_map entry for tensor '${tensor}' is not a shard file name: ${JSON.stringify(shard)}`,
        indexPath,
        tensor,
      );
    }
  }
  return weightMap as Record<string, string>;
}

/** Fills `into` from `position`; a short read means the file shrank after it was opened: "truncated". */
async function readFully(
  handle: FileHandle,
  into: Uint8Array,
  position: number,
  file: string,
  what: string,
  tensor?: string,
): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const length = Math.min(into.length - done, IO_CHUNK_BYTES);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(into, done, length, position + done));
    } catch (e) {
      throw new CheckpointError(`${file}: reading ${what} failed (${(e as Error).message})`, file, tensor, { cause: e });
    }
    if (bytesRead === 0) {
      throw new CheckpointError(
        `${file}: ${what} is truncated: expected ${into.length} bytes at offset ${position}, got ${done} ` +
          `(the file became shorter after it was opened)`,
        file,
        tensor,
      );
    }
    done += bytesRead;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

function fileError(file: string, message: string): CheckpointError {
  return new CheckpointError(`${file}: ${message}`, file);
}

function openError(file: string, e: unknown, noun = 'file'): CheckpointError {
  const code = (e as NodeJS.ErrnoException).code;
  const message = code === 'ENOENT' ? `${noun} not found` : `cannot open (${(e as Error).message})`;
  return new CheckpointError(`${file}: ${message}`, file, undefined, { cause: e });
}
