/**
 * `createServer({ llm })`: vLLM's OpenAI-compatible server on qllm's batching engine, on fastify. Stateless apart
 * from the engine, so replicas scale out behind any load balancer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { ConfigError, DEFAULT_MAX_LOGPROBS, type LLM } from 'qllm';
import { registerChat } from './chat.js';
import { registerCompletions } from './completions.js';
import type { ServerContext } from './context.js';
import { ApiError, fromFastify } from './errors.js';
import { Admission } from './generation.js';
import { InFlight } from './in-flight.js';
import { TokenText } from './logprobs.js';
import { ServerMetrics } from './metrics.js';
import { registerUtilityRoutes } from './routes.js';
import { TokenizerThread } from './tokenizer-thread.js';

export interface ServerOptions {
  /** The engine (constructed by the caller; the server never closes it). */
  llm: LLM;
  /** The model name clients send and /v1/models lists (vLLM's --served-model-name). Default: the model folder as given. */
  servedModelName?: string;
  /** When set, /v1/*, /tokenize and /detokenize need `Authorization: Bearer <apiKey>` (vLLM's --api-key). */
  apiKey?: string;
  /** Sequences that may wait for a KV-cache slot beyond the slots themselves; past it, 429 with Retry-After. Default 64. */
  maxQueue?: number;
  /** Largest request body in bytes (larger: 413). Default 4 MiB. */
  bodyLimit?: number;
  /** 'qwen3': split `<think>` blocks into reasoning_content; 'none': leave them in the content. Default: 'qwen3' when the tokenizer has `</think>`. */
  reasoningParser?: 'qwen3' | 'none';
  /** fastify's logger option (default off). */
  logger?: FastifyServerOptions['logger'];
}

export interface QllmServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  readonly modelName: string;
  /** Start listening; resolves to the base URL (`http://127.0.0.1:8000`). Port 0 picks a free one. */
  listen(options?: { host?: string; port?: number }): Promise<string>;
  /**
   * Graceful shutdown: stop accepting (new requests get 503, /health fails), let running requests finish for up to
   * `timeoutMs` (default 30 s), then abort the rest (their streams end with finish_reason 'abort') and close.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

export const DEFAULT_MAX_QUEUE = 64;
export const DEFAULT_BODY_LIMIT = 4 * 2 ** 20;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();
/** Routes that need the API key (vLLM guards the same ones); /health and /metrics stay open for probes and scrapers. */
const GUARDED = /^\/(v1\/|v1$|tokenize|detokenize)/;

export async function createServer(options: ServerOptions): Promise<QllmServer> {
  const { llm, maxQueue = DEFAULT_MAX_QUEUE, bodyLimit = DEFAULT_BODY_LIMIT } = options;
  if (!(Number.isSafeInteger(maxQueue) && maxQueue >= 0)) throw new ConfigError(`createServer: maxQueue must be an integer >= 0, got ${String(maxQueue)}`);
  if (!(Number.isSafeInteger(bodyLimit) && bodyLimit >= 1024)) throw new ConfigError(`createServer: bodyLimit must be an integer >= 1024, got ${String(bodyLimit)}`);
  if (options.apiKey !== undefined && (typeof options.apiKey !== 'string' || options.apiKey === '')) throw new ConfigError('createServer: apiKey must be a non-empty string');
  if (options.reasoningParser !== undefined && !['qwen3', 'none'].includes(options.reasoningParser)) {
    throw new ConfigError(`createServer: reasoningParser must be 'qwen3' or 'none', got ${String(options.reasoningParser)}`);
  }
  const loaded = await llm.ready();
  const tokenizer = await llm.getTokenizer();
  if (!tokenizer) throw new ConfigError(`${loaded.folder.dir}: no tokenizer.json; the server needs a tokenizer`);
  const layout = await llm.cacheLayout();
  const modelName = options.servedModelName ?? llm.options.model;
  const metrics = new ServerMetrics(llm, layout.slots, { model_name: modelName });
  const inFlight = new InFlight();
  const encoder = new TokenizerThread(tokenizer);
  await encoder.start();
  const ctx: ServerContext = {
    llm,
    tokenizer,
    encoder,
    modelName,
    metrics,
    limits: {
      maxModelLen: layout.maxLen,
      slots: layout.slots,
      vocabSize: loaded.config.vocabSize,
      maxLogprobs: llm.options.maxLogprobs ?? DEFAULT_MAX_LOGPROBS,
      defaults: await llm.getDefaultSamplingParams(),
      defaultMaxTokens: loaded.folder.generation.maxNewTokens,
    },
    admission: new Admission(layout.slots, maxQueue),
    tokenText: new TokenText(tokenizer),
    reasoning: (options.reasoningParser ?? 'qwen3') === 'qwen3' && tokenizer.tokenToId('</think>') !== undefined,
    active: inFlight,
  };

  const app = Fastify({ logger: options.logger ?? false, bodyLimit, onProtoPoisoning: 'error', onConstructorPoisoning: 'error', return503OnClosing: false });
  app.removeContentTypeParser('text/plain'); // JSON only: anything else is a 415
  let closing = false;
  const keyHash = options.apiKey !== undefined ? sha256(options.apiKey) : undefined;

  app.decorateRequest('arrival', 0);
  app.addHook('onRequest', async (request, reply) => {
    (request as typeof request & { arrival: number }).arrival = performance.now();
    const res = reply.raw;
    res.once('close', () => {
      const status = res.writableFinished || res.headersSent ? res.statusCode : 499;
      metrics.httpRequests.inc({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(status) });
    });
    const path = request.url.split('?')[0]!;
    if (keyHash && GUARDED.test(path)) {
      const header = request.headers.authorization ?? '';
      const given = /^Bearer (.+)$/i.exec(header)?.[1] ?? '';
      // Compare digests: constant time whatever the lengths.
      if (!timingSafeEqual(sha256(given), keyHash)) {
        throw new ApiError(401, given ? 'Incorrect API key provided.' : 'Missing API key: send Authorization: Bearer <key>.', null, 'invalid_api_key', {
          'www-authenticate': 'Bearer',
        });
      }
    }
    if (closing && path !== '/metrics') {
      metrics.rejected.inc({ reason: 'shutting_down' });
      throw new ApiError(503, 'the server is shutting down', null, 'service_unavailable', { connection: 'close' });
    }
  });

  app.setErrorHandler((error, request, reply) => {
    const e = error instanceof ApiError ? error : fromFastify(error as { statusCode?: number; code?: string; message: string });
    if (e.status === 429) metrics.rejected.inc({ reason: 'queue_full' });
    if (e.status >= 500) request.log.error(error);
    if (reply.sent || reply.raw.headersSent) return;
    void reply.code(e.status).headers(e.headers).send(e.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(new ApiError(404, `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`, null, 'not_found').toJSON());
  });

  registerUtilityRoutes(app, ctx, () => closing);
  registerCompletions(app, ctx);
  registerChat(app, ctx);

  let closed: Promise<void> | undefined;
  return {
    app,
    metrics,
    modelName,
    async listen({ host = '127.0.0.1', port = 8000 } = {}) {
      await app.listen({ host, port });
      const address = app.server.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${shownHost}:${address.port}`;
    },
    close({ timeoutMs = 30_000 } = {}) {
      closed ??= (async () => {
        closing = true;
        const stopped = app.close(); // stops accepting; resolves once every connection is closed
        await inFlight.whenIdle(timeoutMs);
        inFlight.abortAll(); // past the deadline: the engine frees their slots, their streams end
        await inFlight.whenIdle(10_000);
        app.server.closeAllConnections();
        await stopped;
        await encoder.close();
      })();
      return closed;
    },
  };
}
