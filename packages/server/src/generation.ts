/**
 * One HTTP request's engine requests (one per prompt) from admission to the last output: the bounded queue
 * (429 past it), an AbortSignal that a disconnecting client or a shutdown fires (the engine frees the slots at
 * once), the metrics of every output, and errors as OpenAI errors.
 */
import type { FastifyReply } from 'fastify';
import type { LLM, PromptInput, RequestOutput, SamplingParams } from 'qllm';
import { EventStream } from './context.js';
import { ApiError, fromEngine, tooManyRequests } from './errors.js';
import type { ServerMetrics } from './metrics.js';

/**
 * The bounded queue: sequences admitted and not finished, at most the KV-cache slots plus `maxQueue` waiting. Counted
 * here, synchronously at arrival, so that concurrent requests cannot all slip past a check of the engine's queue.
 * A request is never refused when nothing else is in flight.
 */
export class Admission {
  private inFlight = 0;
  constructor(
    readonly slots: number,
    readonly maxQueue: number,
  ) {}

  get load(): number {
    return this.inFlight;
  }

  acquire(sequences: number): () => void {
    if (this.inFlight > 0 && this.inFlight + sequences > this.slots + this.maxQueue) {
      throw tooManyRequests(
        `the server is busy: ${this.inFlight} sequences are running or waiting (max-num-seqs ${this.slots} + max-queue ` +
          `${this.maxQueue}); retry later`,
      );
    }
    this.inFlight += sequences;
    let released = false;
    return () => {
      if (!released) this.inFlight -= sequences;
      released = true;
    };
  }
}

export interface GenerationContext {
  llm: LLM;
  metrics: ServerMetrics;
  admission: Admission;
  /** When the HTTP request arrived (performance.now() milliseconds). */
  arrival: number;
  /** Fired when the client disconnects or the server stops waiting at shutdown. */
  signal: AbortSignal;
  /** Told of failures that are the server's, not the request's (a 500). */
  logError: (error: unknown) => void;
}

/** A failure as an ApiError; a server-side one (500) is logged, since its message is not sent. */
function failure(ctx: GenerationContext, error: unknown): ApiError {
  const e = fromEngine(error);
  if (e.status >= 500) ctx.logError(error);
  return e;
}

export type OutputHandler = (prompt: number, output: RequestOutput) => void;

/**
 * The running engine requests of one HTTP request. `start` resolves once every prompt has its first output (so a
 * request the engine refuses is still an HTTP error, not a broken stream), `run` delivers the rest.
 */
export class Generation {
  private constructor(
    private readonly ctx: GenerationContext,
    private readonly streams: Array<AsyncGenerator<RequestOutput>>,
    /** Each prompt's first output (undefined if its stream ended without one). */
    private readonly firsts: Array<RequestOutput | undefined>,
    private readonly controller: AbortController,
    private readonly release: () => void,
  ) {}

  static async start(ctx: GenerationContext, prompts: PromptInput[], params: SamplingParams[]): Promise<Generation> {
    const release = ctx.admission.acquire(params.reduce((a, p) => a + p.n, 0));
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      ctx.signal.removeEventListener('abort', onAbort);
      release();
    };
    if (ctx.signal.aborted) controller.abort();
    const streams = prompts.map((prompt, i) => ctx.llm.stream(prompt, params[i], { signal: controller.signal }));
    // The first refusal aborts the others at once (they need not wait for their first token).
    const settled = await Promise.allSettled(
      streams.map((s) =>
        s.next().catch((e: unknown) => {
          controller.abort();
          throw e;
        }),
      ),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      controller.abort();
      await Promise.allSettled(streams.map((s) => s.return(undefined)));
      cleanup();
      throw ctx.signal.aborted ? new ApiError(499, 'the client closed the request') : failure(ctx, failed.reason);
    }
    for (const prompt of prompts) ctx.metrics.promptTokens.inc(promptLength(prompt));
    const firsts = settled.map((r) => {
      const first = (r as PromiseFulfilledResult<IteratorResult<RequestOutput>>).value;
      return first.done ? undefined : first.value;
    });
    return new Generation(ctx, streams, firsts, controller, cleanup);
  }

  /** Deliver every output (the first ones included) to `onOutput`, in the order the engine produced them. */
  async run(onOutput: OutputHandler): Promise<void> {
    const { metrics } = this.ctx;
    const drive = async (i: number) => {
      let last = this.ctx.arrival;
      let first = true;
      const handle = (out: RequestOutput) => {
        const now = performance.now();
        const tokens = out.outputs.reduce((a, o) => a + o.tokenIds.length, 0);
        if (tokens > 0) {
          metrics.generationTokens.inc(tokens);
          (first ? metrics.ttft : metrics.interTokenLatency).observe((now - last) / 1000);
          first = false;
          last = now;
        }
        if (out.finished) {
          metrics.e2eLatency.observe((now - this.ctx.arrival) / 1000);
          for (const o of out.outputs) metrics.requestSuccess.inc({ finished_reason: o.finishReason ?? 'abort' });
        }
        onOutput(i, out);
      };
      const firstOutput = this.firsts[i];
      if (firstOutput === undefined) return;
      handle(firstOutput);
      if (firstOutput.finished) return;
      for (;;) {
        const r = await this.streams[i]!.next();
        if (r.done) return;
        handle(r.value);
      }
    };
    try {
      await Promise.all(this.streams.map((_, i) => drive(i)));
    } catch (e) {
      this.controller.abort();
      await Promise.allSettled(this.streams.map((s) => s.return(undefined)));
      throw e instanceof ApiError ? e : failure(this.ctx, e);
    } finally {
      this.release();
    }
  }

  /**
   * Stop whatever still runs (the engine frees its slots at once) and give back the queue places. Idempotent; the
   * routes call it when they are done, whether or not `run` ran to the end.
   */
  close(): void {
    this.controller.abort();
    this.release();
  }
}

function promptLength(prompt: PromptInput): number {
  return typeof prompt === 'object' && 'promptTokenIds' in prompt ? prompt.promptTokenIds.length : 0;
}

/**
 * Stream a generation as server-sent events, as vLLM does for completions and chat alike: the `opening` choices (if
 * any), then each output's choice deltas, then — with `stream_options.include_usage` — a usage-only chunk (and the
 * running usage on every chunk with `continuous_usage_stats`), then `[DONE]`; an engine failure ends the stream with
 * an error event. `chunk` wraps choices in the endpoint's chunk object.
 */
export async function streamGeneration(
  reply: FastifyReply,
  generation: Generation,
  o: {
    streamOptions: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null | undefined;
    chunk: (extra: object) => object;
    usage: () => unknown;
    deltas: (prompt: number, output: RequestOutput) => unknown[];
    opening?: unknown[];
  },
): Promise<void> {
  const includeUsage = o.streamOptions?.include_usage === true;
  const continuous = includeUsage && o.streamOptions?.continuous_usage_stats === true;
  const sse = new EventStream(reply);
  const send = (choices: unknown[]) => sse.send(o.chunk({ choices, ...(includeUsage && { usage: continuous ? o.usage() : null }) }));
  if (o.opening) send(o.opening);
  try {
    await generation.run((i, out) => {
      const deltas = o.deltas(i, out);
      if (deltas.length) send(deltas);
    });
    if (includeUsage) sse.send(o.chunk({ choices: [], usage: o.usage() }));
    sse.end();
  } catch (e) {
    sse.end(fromEngine(e));
  }
}
