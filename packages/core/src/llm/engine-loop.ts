/**
 * Drives one Engine for an LLM (vLLM's LLMEngine/AsyncLLM loop): whoever adds a request gets a channel of its
 * outputs; a single loop steps the engine while anything is unfinished and hands each step's outputs to their
 * channels. Offline generate() and streaming share the loop, so their requests batch together.
 */
import type { Engine, EngineRequestInit } from '../engine/engine.js';
import type { RequestOutput } from './outputs.js';

/**
 * What an LLM drives: the local engine's loop, or a remote backend's (RemoteLoop). Whoever adds a request gets an
 * iterator of its outputs; abort ends it (a final output with finish reason 'abort').
 */
export interface GenerationLoop {
  add(id: string, init: EngineRequestInit): AsyncIterableIterator<RequestOutput>;
  abort(id: string): void;
  stats(): { running: number; waiting: number; slotsInUse: number };
  /** Abort every request and wait until they have stopped. */
  close(): Promise<void>;
}

/** An async queue of one request's outputs. */
export class Channel implements AsyncIterableIterator<RequestOutput> {
  private readonly items: RequestOutput[] = [];
  private waiter?: { resolve: (r: IteratorResult<RequestOutput>) => void; reject: (e: unknown) => void };
  private done = false;
  private error?: unknown;

  push(item: RequestOutput): void {
    if (item.finished) this.done = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  fail(error: unknown): void {
    this.error = error;
    this.done = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(error);
    }
  }

  next(): Promise<IteratorResult<RequestOutput>> {
    if (this.items.length) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<RequestOutput> {
    return this;
  }
}

export class EngineLoop implements GenerationLoop {
  private readonly channels = new Map<string, Channel>();
  private running?: Promise<void>;

  constructor(readonly engine: Engine) {}

  /** Add a request (validated by the engine at once) and return the iterator of its outputs. */
  add(id: string, init: EngineRequestInit): AsyncIterableIterator<RequestOutput> {
    this.engine.addRequest(id, init);
    const channel = new Channel();
    this.channels.set(id, channel);
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      if (this.engine.hasUnfinished()) this.running = this.loop();
    });
    return channel;
  }

  abort(id: string): void {
    this.engine.abort(id);
  }

  stats(): { running: number; waiting: number; slotsInUse: number } {
    return this.engine.stats();
  }

  /** Abort every request and wait for the loop to deliver their final outputs and stop. */
  async close(): Promise<void> {
    for (const id of this.engine.requestIds()) this.engine.abort(id);
    await this.running;
  }

  private async loop(): Promise<void> {
    // Let the caller add its other requests before the first step, so they batch from the start.
    await Promise.resolve();
    try {
      while (this.engine.hasUnfinished()) {
        for (const out of await this.engine.step()) {
          this.channels.get(out.requestId)?.push(out);
          if (out.finished) this.channels.delete(out.requestId);
        }
        // Yield to the event loop between steps: new requests, aborts and consumers run here.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      for (const [id, channel] of this.channels) {
        channel.fail(error);
        this.engine.abort(id);
      }
      this.channels.clear();
      // The aborted requests' outputs are dropped with their channels.
      while (this.engine.hasUnfinished()) await this.engine.step().catch(() => []);
    }
  }
}
