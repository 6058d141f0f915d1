/**
 * Requests that end early and servers that stop: a client aborting mid-stream (or mid-request) frees its slot at
 * once, as the running-sequences metric shows; past the slots and the bounded queue, 429 with Retry-After; a
 * graceful shutdown lets running requests finish, or aborts them at its deadline, and refuses new connections.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LLM } from 'qllm';
import { MODEL, metric, newLLM, post, startServer, tinyModel, waitFor, type Harness } from './__fixtures__/harness.js';

let llm: LLM;
let remove: () => Promise<void>;

beforeAll(async () => {
  const model = await tinyModel(14);
  remove = model.remove;
  llm = newLLM(model.dir, { maxNumSeqs: 2, maxModelLen: 1024 });
  await llm.ready();
});
afterAll(async () => {
  await llm?.close();
  await remove?.();
});

/** A long request: 1000 tokens, EOS ignored (several seconds of decoding, even on a fast machine). */
const long = { model: MODEL, prompt: 'I am', max_tokens: 1000, temperature: 0, ignore_eos: true };

const aborted = async (url: string) => {
  const v = await metric(url, 'qllm_request_success_total', { finished_reason: 'abort' });
  return Number.isNaN(v) ? 0 : v;
};

/** Start a stream and resolve once its first chunk has arrived; `rest` drains it. */
async function startStream(client: OpenAI, signal?: AbortSignal) {
  const stream = await client.completions.create({ ...long, stream: true } as never, { signal });
  const it = (stream as unknown as AsyncIterable<{ choices: Array<{ text: string; finish_reason: string | null }> }>)[Symbol.asyncIterator]();
  await it.next();
  return {
    async rest() {
      let finish: string | null = null;
      let chunks = 1;
      for (let r = await it.next(); !r.done; r = await it.next()) {
        chunks++;
        finish = r.value.choices[0]?.finish_reason ?? finish;
      }
      return { finish, chunks };
    },
  };
}

describe('abort and the queue', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startServer(llm, { maxQueue: 1 });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('a client aborting mid-stream frees its slot at once', async () => {
    const aborts = await aborted(h.url);
    const controller = new AbortController();
    const s = await startStream(h.client, controller.signal);
    expect(await metric(h.url, 'qllm_num_sequences_running')).toBe(1);
    const t = performance.now();
    controller.abort();
    const rest = await s.rest().catch(() => ({ finish: null }));
    expect(rest.finish).toBeNull(); // the client saw no end: it went away
    await waitFor(async () => (await metric(h.url, 'qllm_num_sequences_running')) === 0, 5000, 'the slot to be freed');
    expect(performance.now() - t).toBeLessThan(1000);
    // Freed by the abort, not by finishing its 1000 tokens:
    expect(await aborted(h.url)).toBe(aborts + 1);
    expect(await metric(h.url, 'qllm_kv_cache_usage_perc')).toBe(0);
  });

  it('a client giving up on a non-streaming request frees its slot too', async () => {
    const aborts = await aborted(h.url);
    const controller = new AbortController();
    const pending = h.client.completions.create(long, { signal: controller.signal }).catch((e: unknown) => e);
    await waitFor(async () => (await metric(h.url, 'qllm_num_sequences_running')) === 1, 5000, 'the request to run');
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await waitFor(async () => (await metric(h.url, 'qllm_num_sequences_running')) === 0, 1000, 'the slot to be freed');
    expect(await aborted(h.url)).toBe(aborts + 1);
  });

  it('past the slots and the queue: 429 with Retry-After; served again once there is room', async () => {
    const controllers = [new AbortController(), new AbortController(), new AbortController()];
    // Two slots run, one request waits (maxQueue 1).
    const running = await Promise.all([startStream(h.client, controllers[0]!.signal), startStream(h.client, controllers[1]!.signal)]);
    const waiting = h.client.completions.create({ ...long, stream: true } as never, { signal: controllers[2]!.signal }).catch((e: unknown) => e);
    await waitFor(async () => (await metric(h.url, 'qllm_num_requests_waiting')) === 1, 5000, 'the third request to wait');

    const refused = await post(`${h.url}/v1/completions`, { prompt: 'x', max_tokens: 2 });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.json.error.code).toBe('rate_limit_exceeded');
    const viaClient = await h.client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2 }).catch((e: unknown) => e);
    expect(viaClient).toBeInstanceOf(OpenAI.RateLimitError);
    expect(await metric(h.url, 'qllm_requests_rejected_total', { reason: 'queue_full' })).toBe(2);

    for (const c of controllers) c.abort();
    await Promise.allSettled([...running.map((r) => r.rest()), waiting]);
    await waitFor(async () => (await metric(h.url, 'qllm_num_sequences_running')) === 0, 5000, 'the slots to be freed');
    const served = await post(`${h.url}/v1/completions`, { prompt: 'x', max_tokens: 2 });
    expect(served.status).toBe(200);
  });
});

describe('an engine failure', () => {
  it('is a 500 (or an error event ending the stream) in OpenAI\'s shape, and the server keeps serving', async () => {
    let fail = true;
    const faulty = Object.create(llm) as LLM;
    faulty.stream = async function* (prompt, params, options) {
      let n = 0;
      for await (const out of llm.stream(prompt, params, options)) {
        yield out;
        if (fail && ++n === 2) throw new Error('the backend exploded');
      }
    };
    const h = await startServer(faulty);
    try {
      const plain = await post(`${h.url}/v1/completions`, { prompt: 'I am', max_tokens: 8, temperature: 0 });
      expect(plain.status).toBe(500);
      expect(plain.json.error).toEqual({ message: 'internal error while generating', type: 'server_error', param: null, code: 'internal_error' });
      const streamed = await post(`${h.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, stream: true });
      expect(streamed.status).toBe(200);
      const events = streamed.text.trim().split('\n\n');
      expect(events.at(-1)).toBe('data: [DONE]');
      expect(JSON.parse(events.at(-2)!.slice('data: '.length)).error.type).toBe('server_error');
      expect((await llm.stats()).running).toBe(0);
      fail = false;
      expect((await post(`${h.url}/v1/completions`, { prompt: 'I am', max_tokens: 8 })).status).toBe(200);
    } finally {
      await h.stop();
    }
  });
});

describe('a slow prompt', () => {
  it('is tokenized off the event loop: running streams keep flowing meanwhile', async () => {
    const h = await startServer(llm);
    try {
      const res = await fetch(`${h.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...long, max_tokens: 1000, stream: true }),
      });
      const reader = res.body!.getReader();
      await reader.read();
      // One 300,000-letter word: seconds of BPE merges in the JavaScript tokenizer.
      let answered = false;
      const slow = post(`${h.url}/v1/completions`, { prompt: 'a'.repeat(300_000), max_tokens: 1 }).finally(() => (answered = true));
      let last = performance.now();
      let maxGap = 0;
      let chunks = 0;
      while (!answered) {
        await reader.read();
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
        chunks++;
      }
      expect((await slow).status).toBe(400); // far past max-model-len, once tokenized
      expect(chunks).toBeGreaterThan(10);
      expect(maxGap).toBeLessThan(1000);
      await reader.cancel();
    } finally {
      await h.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('lets running requests finish within the deadline, refusing new connections meanwhile', async () => {
    const h = await startServer(llm);
    const stream = await h.client.completions.create({ ...long, max_tokens: 40, stream: true } as never);
    const it = (stream as unknown as AsyncIterable<{ choices: Array<{ finish_reason: string | null }> }>)[Symbol.asyncIterator]();
    await it.next();
    const closed = h.server.close({ timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 20));
    await expect(fetch(`${h.url}/health`)).rejects.toThrow(); // no longer listening
    let finish: string | null = null;
    for (let r = await it.next(); !r.done; r = await it.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
    expect(finish).toBe('length');
    await closed;
  });

  it('aborts what is still running at the deadline: streams end with [DONE], slots are freed', async () => {
    const h = await startServer(llm);
    const raw = fetch(`${h.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...long, stream: true }),
    });
    const res = await raw;
    const reader = res.body!.getReader();
    await reader.read();
    const t = performance.now();
    await h.server.close({ timeoutMs: 200 });
    expect(performance.now() - t).toBeLessThan(2000); // the request alone would run for seconds
    let text = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString('utf8');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(text).toContain('"finish_reason":"abort"');
    expect((await llm.stats()).running).toBe(0);
  });
});
