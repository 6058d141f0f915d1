// A GGUF file written in one pass and atomically: the header first (every tensor's size is known from its info),
// then each tensor's data in order as it is produced, into a temporary file beside the output
// (`.<name>.partial-<pid>-<random>`) that is moved into place only when complete. A failure removes the temporary
// file; one left by a killed process is removed by the next export to the same output.
import { randomBytes } from 'node:crypto';
import { link, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { encodeHeader, GGUF_DEFAULT_ALIGNMENT, type GgufTensorInfo, type GgufValue, type PlacedTensor } from './format.js';

export class GgufFileWriter {
  private next = 0;
  private position: number;
  private written = 0;
  private closed = false;

  private constructor(
    /** Where the finished file goes. */
    readonly output: string,
    /** The temporary file being written. */
    readonly partial: string,
    private readonly handle: FileHandle,
    private readonly dataStart: number,
    private readonly placed: PlacedTensor[],
    private readonly alignment: number,
  ) {
    this.position = dataStart;
  }

  /** Opens a temporary file beside `output` and writes the header (metadata and tensor infos). */
  static async create(
    output: string,
    metadata: ReadonlyMap<string, GgufValue>,
    tensors: readonly GgufTensorInfo[],
    alignment = GGUF_DEFAULT_ALIGNMENT,
  ): Promise<GgufFileWriter> {
    const { header, placed } = encodeHeader(metadata, tensors, alignment);
    await removeStalePartials(output);
    const partial = path.join(path.dirname(output), `${partialPrefix(output)}${process.pid}-${randomBytes(4).toString('hex')}`);
    let handle: FileHandle;
    try {
      handle = await open(partial, 'wx');
    } catch (e) {
      throw new Error(`${output}: cannot create the output file (${(e as Error).message})`, { cause: e });
    }
    const writer = new GgufFileWriter(output, partial, handle, header.length, placed, alignment);
    try {
      await writer.writeAt(header, 0);
    } catch (e) {
      await writer.abort();
      throw e;
    }
    return writer;
  }

  /** The tensors in file order, with their data offsets and sizes. */
  get tensors(): readonly PlacedTensor[] {
    return this.placed;
  }

  /** Bytes of tensor data written so far. */
  get bytesWritten(): number {
    return this.written;
  }

  /** The next tensor whose data is due, or undefined when all are written. */
  get pending(): PlacedTensor | undefined {
    return this.placed[this.next];
  }

  /**
   * Writes the next tensor's data: `produce` hands its bytes over in order, in as many pieces as it likes, and must
   * hand over exactly the tensor's size.
   */
  async writeTensor(name: string, produce: (write: (bytes: Uint8Array) => Promise<void>) => Promise<void>): Promise<void> {
    const t = this.placed[this.next];
    if (!t || t.name !== name) throw new Error(`GGUF writer: tensor '${name}' written out of order (expected '${t?.name ?? 'none'}')`);
    const start = this.dataStart + t.offset;
    if (this.position !== start) throw new Error(`GGUF writer: internal offset mismatch before tensor '${name}'`);
    let done = 0;
    await produce(async (bytes) => {
      if (done + bytes.length > t.bytes) throw new Error(`tensor '${name}': more data than its ${t.bytes} bytes`);
      await this.writeAt(bytes, start + done);
      done += bytes.length;
    });
    if (done !== t.bytes) throw new Error(`tensor '${name}': ${done} bytes of data written, its info says ${t.bytes}`);
    const end = start + done;
    const padded = this.dataStart + Math.ceil((t.offset + t.bytes) / this.alignment) * this.alignment;
    if (padded > end) await this.writeAt(new Uint8Array(padded - end), end);
    this.position = padded;
    this.written += t.bytes;
    this.next++;
  }

  /**
   * Flushes to disk and moves the temporary file to the output. Every tensor must have been written. Without
   * `overwrite`, an output that appeared meanwhile is not replaced (an error).
   */
  async finish({ overwrite = false } = {}): Promise<void> {
    if (this.pending) {
      await this.abort();
      throw new Error(`GGUF writer: tensor '${this.pending.name}' was never written`);
    }
    try {
      await this.handle.sync();
      await this.handle.close();
      this.closed = true;
      if (overwrite) await rename(this.partial, this.output);
      else await moveNoClobber(this.partial, this.output);
    } catch (e) {
      await this.abort();
      throw new Error(`${this.output}: cannot finish writing (${(e as Error).message})`, { cause: e });
    }
  }

  /** Closes and removes the temporary file (never throws). */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => {});
    }
    await rm(this.partial, { force: true }).catch(() => {});
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }
}

function partialPrefix(output: string): string {
  return `.${path.basename(output)}.partial-`;
}

/** Removes temporary files of earlier exports to `output` whose process is gone. */
async function removeStalePartials(output: string): Promise<void> {
  const prefix = partialPrefix(output);
  const names = await readdir(path.dirname(output)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (Number.isSafeInteger(pid) && pid !== process.pid && !alive(pid)) await rm(path.join(path.dirname(output), name), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Moves `from` to `to` unless `to` exists (a hard link fails on an existing target; rename would replace it). */
async function moveNoClobber(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new Error('it appeared while the export ran; pass overwrite to replace it', { cause: e });
    // A file system without hard links: rename (the output was checked absent when the export started).
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV') return rename(from, to);
    throw e;
  }
  await unlink(from);
}
