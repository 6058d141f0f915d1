/**
 * Encoding that never blocks the event loop for long: short texts are encoded inline (microseconds), long ones on a
 * worker thread holding its own copy of the tokenizer, so running streams keep flowing while a huge or pathological
 * prompt is tokenized. The thread starts with the server and is restarted if it dies.
 */
import { Worker } from 'node:worker_threads';
import { ConfigError, type QllmTokenizer } from 'qllm';
import type { EncodeJob, EncodeResult } from './tokenize-worker.js';

/** Texts up to this many characters are encoded inline (well under a millisecond for ordinary text). */
export const INLINE_CHARS = 2048;

export class TokenizerThread {
  private worker?: Worker;
  private ready?: Promise<void>;
  private readonly pending = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  constructor(private readonly tokenizer: QllmTokenizer) {}

  /** Start the thread (and load its tokenizer) now rather than on the first long prompt. */
  start(): Promise<void> {
    if (this.ready) return this.ready;
    const workerData = { dir: this.tokenizer.dir };
    // Built: dist/tokenize-worker.js. From source (.ts, under tsx or vitest): a bootstrap registers tsx in the thread
    // first (node 20 does not apply `--import tsx` to a worker's own entry) and resolves workspace packages from source.
    const worker = import.meta.url.endsWith('.ts')
      ? new Worker(
          `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(new URL('./tokenize-worker.ts', import.meta.url).href)}); })`,
          { eval: true, workerData, execArgv: ['--conditions=source'] },
        )
      : new Worker(new URL('./tokenize-worker.js', import.meta.url), { workerData });
    worker.unref();
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    worker.on('message', (msg: EncodeResult | 'ready') => {
      if (msg === 'ready') return;
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if ('error' in msg) p?.reject(new ConfigError(msg.error));
      else p?.resolve(msg.ids);
    });
    worker.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('the tokenizer thread stopped'));
      this.pending.clear();
      if (this.worker === worker) this.worker = this.ready = undefined;
    });
    this.ready.catch(() => undefined);
    return this.ready;
  }

  async encode(text: string, addSpecialTokens = true): Promise<number[]> {
    if (text.length <= INLINE_CHARS) return this.tokenizer.encode(text, { addSpecialTokens });
    await this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker!.postMessage({ id, text, addSpecialTokens } satisfies EncodeJob);
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
  }
}
