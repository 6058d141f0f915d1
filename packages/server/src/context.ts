/**
 * What every route shares: the engine, its limits, metrics, the queue bound, the requests in flight, and helpers
 * for parsing a body, checking the model name, tying a request to its client, and writing server-sent events.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LLM, QllmTokenizer } from 'qllm';
import type { ZodType } from 'zod';
import { ApiError, fromZod } from './errors.js';
import type { Admission, GenerationContext } from './generation.js';
import type { InFlight } from './in-flight.js';
import type { TokenText } from './logprobs.js';
import type { ServerMetrics } from './metrics.js';
import type { TokenizerThread } from './tokenizer-thread.js';
import type { EngineLimits } from './params.js';

export interface ServerContext {
  llm: LLM;
  tokenizer: QllmTokenizer;
  /** Encodes long texts off the event loop. */
  encoder: TokenizerThread;
  limits: EngineLimits;
  modelName: string;
  metrics: ServerMetrics;
  admission: Admission;
  tokenText: TokenText;
  /** Split Qwen3's `<think>` block into reasoning_content (vLLM's qwen3 reasoning parser). */
  reasoning: boolean;
  /** Abort controllers of the requests generating now: a shutdown past its deadline aborts them. */
  active: InFlight;
}

export function parseBody<T>(schema: ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw fromZod(r.error);
  return r.data;
}

/** vLLM: a request naming another model is a 404 (OpenAI's `model_not_found`). Omitted means the served model. */
export function checkModel(ctx: ServerContext, model: string | null | undefined): void {
  if (model != null && model !== ctx.modelName) {
    throw new ApiError(404, `The model '${model.length > 200 ? `${model.slice(0, 200)}...` : model}' does not exist.`, 'model', 'model_not_found');
  }
}

export const requestId = (prefix: string) => `${prefix}-${randomUUID().replaceAll('-', '')}`;
export const unixSeconds = () => Math.floor(Date.now() / 1000);

/**
 * A generation context for this HTTP request: its signal fires when the client goes away before the response is
 * complete (the engine then frees its slots at once) or when a shutdown stops waiting. Call `done` when finished.
 */
export function generationContext(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): GenerationContext & { done: () => void } {
  const controller = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) controller.abort();
  };
  res.on('close', onClose);
  ctx.active.add(controller);
  return {
    llm: ctx.llm,
    metrics: ctx.metrics,
    admission: ctx.admission,
    arrival: (request as FastifyRequest & { arrival?: number }).arrival ?? performance.now(),
    signal: controller.signal,
    logError: (error) => request.log.error({ err: error }, 'generation failed'),
    done: () => {
      res.off('close', onClose);
      ctx.active.delete(controller);
    },
  };
}

/** Server-sent events on the raw response (the reply is hijacked: fastify no longer writes it). */
export class EventStream {
  private readonly res: FastifyReply['raw'];

  constructor(reply: FastifyReply) {
    reply.hijack();
    this.res = reply.raw;
    this.res.on('error', () => undefined); // a write racing a disconnect must not crash the process
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
  }

  get open(): boolean {
    return !this.res.writableEnded && !this.res.destroyed;
  }

  send(data: unknown): void {
    if (this.open) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** End the stream: an error event (if any), then `data: [DONE]`. */
  end(error?: ApiError): void {
    if (!this.open) return;
    if (error) this.send(error.toJSON());
    this.res.end('data: [DONE]\n\n');
  }
}
