/**
 * A RemoteEngineV1 over an OpenAI-compatible server the vLLM way: POST /v1/completions with the prompt as token ids
 * (`prompt: number[]`), vLLM's sampling extras (top_k, min_p, repetition_penalty, stop_token_ids, ignore_eos,
 * min_tokens, seed, ...), streamed (server-sent events), and the output as token ids: vLLM's `return_token_ids`
 * (choices carry `token_ids`), and `logprobs` with `return_tokens_as_token_ids` (tokens as `token_id:<id>`, which is
 * also where ids come from on a vLLM without return_token_ids). Works against vLLM, vLLM-MindSpore and `qllm serve`.
 */
import { ConfigError, EngineBusyError, type Logprob, type RemoteDeltaV1, type RemoteEngineV1, type RemoteRequestV1, type SamplingParams } from '@qllm/core';

export interface OpenAIServerOptions {
  /** Base URL, e.g. 'http://127.0.0.1:8000' (a trailing /v1 is accepted). */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>` (vLLM's --api-key). */
  apiKey?: string;
  /** The model name to request (default: the first one /v1/models lists). */
  servedModelName?: string;
  /** Called by close() (e.g. to stop a server the backend started). */
  onClose?: () => Promise<void>;
  /** How long to wait for /v1/models (default 30 s). */
  timeoutMs?: number;
}

/** vLLM writes a -Infinity logprob as -9999 (JSON has none). */
const NEG_INF_JSON = -9999;

interface CompletionChunkChoice {
  index: number;
  text?: string;
  token_ids?: number[] | null;
  logprobs?: { tokens?: string[]; token_logprobs?: Array<number | null>; top_logprobs?: Array<Record<string, number> | null> } | null;
  finish_reason?: string | null;
  stop_reason?: number | string | null;
}

/** The completions request body for a request (vLLM's names; top_k off is -1, which every vLLM accepts). */
export function completionBody(model: string, promptTokenIds: readonly number[], p: SamplingParams): Record<string, unknown> {
  return {
    model,
    prompt: [...promptTokenIds],
    stream: true,
    n: p.n,
    max_tokens: p.maxTokens,
    temperature: p.temperature,
    top_p: p.topP,
    top_k: p.topK === 0 ? -1 : p.topK,
    min_p: p.minP,
    presence_penalty: p.presencePenalty,
    frequency_penalty: p.frequencyPenalty,
    repetition_penalty: p.repetitionPenalty,
    ...(p.seed !== undefined && { seed: p.seed }),
    ...(p.stop.length > 0 && { stop: [...p.stop] }),
    ...(p.stopTokenIds.length > 0 && { stop_token_ids: [...p.stopTokenIds] }),
    ignore_eos: p.ignoreEos,
    min_tokens: p.minTokens,
    skip_special_tokens: p.skipSpecialTokens,
    include_stop_str_in_output: p.includeStopStrInOutput,
    // Token ids come back two ways: return_token_ids (vLLM >= 0.10.2), and the logprobs' `token_id:<id>` tokens
    // (every vLLM); logprobs 0 is the chosen token's alone.
    logprobs: p.logprobs ?? 0,
    return_tokens_as_token_ids: true,
    return_token_ids: true,
  };
}

function tokenIdOf(token: string, url: string): number {
  const m = /^token_id:(\d+)$/.exec(token);
  if (!m) throw new Error(`${url}: the server sent logprob token ${JSON.stringify(token.slice(0, 40))}, not 'token_id:<id>' (return_tokens_as_token_ids)`);
  return Number(m[1]);
}

const finite = (lp: number) => (lp <= NEG_INF_JSON ? -Infinity : lp);

/** One streamed choice as a delta: token ids, and (when asked) their logprobs with ranks among the returned top k. */
export function parseChoice(choice: CompletionChunkChoice, wantLogprobs: boolean, url: string): RemoteDeltaV1 {
  const lp = choice.logprobs ?? undefined;
  const fromLogprobs = lp?.tokens?.map((t) => tokenIdOf(t, url));
  const ids = Array.isArray(choice.token_ids) ? choice.token_ids : fromLogprobs;
  if (!ids) {
    if (choice.text) throw new Error(`${url}: the server sent text without token ids (it needs vLLM's return_token_ids or return_tokens_as_token_ids)`);
  } else if (fromLogprobs && (fromLogprobs.length !== ids.length || fromLogprobs.some((t, i) => t !== ids[i]))) {
    throw new Error(`${url}: the server's token_ids [${ids.join(', ')}] disagree with its logprobs' tokens [${fromLogprobs.join(', ')}]`);
  }
  const tokenIds = ids ?? [];
  const delta: RemoteDeltaV1 = { index: choice.index, tokenIds };
  if (wantLogprobs) {
    delta.logprobs = tokenIds.map((id, i) => {
      const entry: Record<number, Logprob> = {};
      const values: Array<[number, number]> = Object.entries(lp?.top_logprobs?.[i] ?? {}).map(([t, v]) => [tokenIdOf(t, url), finite(v)]);
      const chosen = lp?.token_logprobs?.[i];
      if (typeof chosen === 'number' && !values.some(([t]) => t === id)) values.push([id, finite(chosen)]);
      // The rank among what the server returned (the top k and the chosen token): exact for the top k; for a chosen
      // token outside them, k + 1 is a lower bound (the OpenAI shape carries no rank).
      for (const [t, v] of values) entry[t] = { logprob: v, rank: 1 + values.filter(([, w]) => w > v).length };
      return entry;
    });
  }
  if (choice.finish_reason) {
    const reason = choice.finish_reason;
    delta.finishReason = reason === 'length' ? 'length' : reason === 'abort' ? 'abort' : 'stop';
    delta.stopReason = choice.stop_reason ?? null;
  }
  return delta;
}

/** The `data:` payloads of a server-sent event stream. */
async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const bytes of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (data) yield data;
    }
  }
}

function errorMessage(text: string): string {
  try {
    const json = JSON.parse(text) as { error?: { message?: string } | string; message?: string; detail?: unknown };
    if (typeof json.error === 'object' && json.error?.message) return json.error.message;
    if (typeof json.error === 'string') return json.error;
    if (json.message) return json.message;
    if (json.detail) return JSON.stringify(json.detail);
  } catch {
    // not JSON
  }
  return text.slice(0, 500) || '(no body)';
}

/** A failed response as qllm's errors: 400 → ConfigError (the request is wrong), 429 → EngineBusyError, else Error. */
function httpError(url: string, status: number, text: string): Error {
  const message = `${url}: ${errorMessage(text)}`;
  if (status === 400 || status === 404 || status === 413 || status === 422) return new ConfigError(message);
  if (status === 429) return new EngineBusyError(message);
  return new Error(`${message} (HTTP ${status})`);
}

/** Connect to a server (GET /v1/models: reachable, which model, its context length) and return the engine over it. */
export async function connectOpenAIServer(o: OpenAIServerOptions): Promise<RemoteEngineV1> {
  const url = o.url.replace(/\/+$/, '').replace(/\/v1$/, '');
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(o.apiKey && { authorization: `Bearer ${o.apiKey}` }) };
  let models: { data?: Array<{ id: string; max_model_len?: number }> };
  try {
    const res = await fetch(`${url}/v1/models`, { headers, signal: AbortSignal.timeout(o.timeoutMs ?? 30_000) });
    if (!res.ok) throw httpError(url, res.status, await res.text());
    models = (await res.json()) as typeof models;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new ConfigError(`cannot reach the OpenAI-compatible server at ${url} (GET /v1/models: ${cause}): is it running?`, { cause: e });
  }
  const list = models.data ?? [];
  const card = o.servedModelName !== undefined ? list.find((m) => m.id === o.servedModelName) : list[0];
  if (!card) {
    throw new ConfigError(
      o.servedModelName !== undefined
        ? `${url} does not serve a model named '${o.servedModelName}' (it serves: ${list.map((m) => m.id).join(', ') || 'none'})`
        : `${url}/v1/models lists no model`,
    );
  }
  const maxModelLen = typeof card.max_model_len === 'number' ? card.max_model_len : undefined;
  let closed = false;
  return {
    specificationVersion: 'v1',
    url,
    servedModelName: card.id,
    maxModelLen,
    async *generate(request: RemoteRequestV1): AsyncGenerator<RemoteDeltaV1> {
      if (closed) throw new Error(`${url}: the engine is closed`);
      const controller = new AbortController();
      const onAbort = () => controller.abort();
      request.signal.addEventListener('abort', onAbort, { once: true });
      if (request.signal.aborted) controller.abort();
      try {
        const res = await fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers,
          body: JSON.stringify(completionBody(card.id, request.promptTokenIds, request.params)),
          signal: controller.signal,
        });
        if (!res.ok || !res.body) throw httpError(url, res.status, await res.text());
        const wantLogprobs = request.params.logprobs !== undefined;
        for await (const data of sseData(res.body)) {
          if (data === '[DONE]') return;
          const chunk = JSON.parse(data) as {
            choices?: CompletionChunkChoice[]; error?: { message?: string; code?: number | string | null }; object?: string; code?: number;
          };
          // An error mid-stream: {"error": {..., "code": <status>}} (vLLM; qllm serve has a code name there), or an
          // older vLLM's {"object": "error", "message": ..., "code": <status>}.
          if (chunk.error) throw httpError(url, typeof chunk.error.code === 'number' ? chunk.error.code : 500, JSON.stringify(chunk));
          if (chunk.object === 'error') throw httpError(url, typeof chunk.code === 'number' ? chunk.code : 500, JSON.stringify(chunk));
          for (const choice of chunk.choices ?? []) yield parseChoice(choice, wantLogprobs, url);
        }
      } finally {
        request.signal.removeEventListener('abort', onAbort);
        controller.abort(); // a consumer that stops early closes the stream: the server aborts the request
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await o.onClose?.();
    },
  };
}
