/**
 * Malformed and hostile requests against a real server (with an API key): each gets the right 4xx status and
 * OpenAI's error shape naming the field, nothing crashes, and the server serves normally afterwards.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LLM } from 'qllm';
import { MODEL, metric, newLLM, post, startServer, tinyModel, type Harness } from './__fixtures__/harness.js';

const KEY = 'sk-test-key';
const auth = { authorization: `Bearer ${KEY}` };
let h: Harness;
let llm: LLM;
let remove: () => Promise<void>;

beforeAll(async () => {
  const model = await tinyModel(12);
  remove = model.remove;
  llm = newLLM(model.dir, { maxNumSeqs: 4, maxModelLen: 256 });
  h = await startServer(llm, { apiKey: KEY, bodyLimit: 1 << 20 });
});
afterAll(async () => {
  await h?.stop();
  await llm?.close();
  await remove?.();
});

interface Case {
  name: string;
  path?: string;
  /** A JSON value, or a raw string sent as is. */
  body: unknown;
  headers?: Record<string, string>;
  status: number;
  /** The error's `param` (undefined: not checked). */
  param?: string | null;
  method?: string;
}

const ok = { prompt: 'I am', max_tokens: 2 };
const chat = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

const cases: Case[] = [
  // Not JSON, or not an object
  { name: 'malformed JSON', body: '{"prompt": "I am",', status: 400, param: null },
  { name: 'empty body', body: '', status: 400, param: null },
  { name: 'a JSON array body', body: [], status: 400, param: null },
  { name: 'a JSON null body', body: 'null', status: 400, param: null },
  { name: 'a JSON string body', body: '"I am"', status: 400, param: null },
  { name: 'text/plain content type', body: JSON.stringify(ok), headers: { 'content-type': 'text/plain' }, status: 415 },
  { name: '__proto__ key', body: '{"prompt": "I am", "__proto__": {"polluted": true}}', status: 400 },
  { name: 'constructor.prototype key', body: '{"prompt": "I am", "constructor": {"prototype": {"x": 1}}}', status: 400 },
  { name: 'deeply nested unknown field', body: `{"prompt": "I am", "extra": ${deep(50_000)}}`, status: 400, param: 'extra' },
  { name: 'deeply nested stop', body: `{"prompt": "I am", "stop": ${deep(50_000)}}`, status: 400, param: 'stop' },
  { name: 'oversized body', body: JSON.stringify({ prompt: 'x'.repeat(2 << 20) }), status: 413 },
  // Fields: unknown, missing, mistyped
  { name: 'unknown field', body: { ...ok, best_of_all: 3 }, status: 400, param: 'best_of_all' },
  { name: 'unknown model', body: { ...ok, model: 'gpt-4o' }, status: 404, param: 'model' },
  { name: 'model not a string', body: { ...ok, model: 7 }, status: 400, param: 'model' },
  { name: 'missing prompt', body: { max_tokens: 2 }, status: 400, param: 'prompt' },
  { name: 'prompt a number', body: { prompt: 42 }, status: 400, param: 'prompt' },
  { name: 'empty prompt', body: { prompt: '' }, status: 400, param: 'prompt' },
  { name: 'empty prompt list', body: { prompt: [] }, status: 400, param: 'prompt' },
  { name: 'negative token id', body: { prompt: [1, -2] }, status: 400, param: 'prompt[1]' },
  { name: 'fractional token id', body: { prompt: [1, 2.5] }, status: 400, param: 'prompt' },
  { name: 'token id past 2^53', body: '{"prompt": [1, 123456789012345678901]}', status: 400, param: 'prompt[1]' },
  { name: 'token id outside the vocabulary', body: { prompt: [1, 151936] }, status: 400, param: 'prompt' },
  { name: 'max_tokens a string', body: { ...ok, max_tokens: '10' }, status: 400, param: 'max_tokens' },
  { name: 'max_tokens negative', body: { ...ok, max_tokens: -1 }, status: 400, param: 'max_tokens' },
  { name: 'max_tokens zero', body: { ...ok, max_tokens: 0 }, status: 400, param: 'max_tokens' },
  { name: 'max_tokens huge', body: { ...ok, max_tokens: 1e12 }, status: 400, param: 'max_tokens' },
  { name: 'max_tokens past the context', body: { ...ok, max_tokens: 255 }, status: 400, param: 'max_tokens' },
  { name: 'prompt longer than max-model-len', body: { prompt: Array.from({ length: 300 }, (_, i) => 100 + i) }, status: 400, param: 'prompt' },
  { name: 'text prompt longer than max-model-len', body: { prompt: 'hello '.repeat(400) }, status: 400, param: 'prompt' },
  { name: 'temperature negative', body: { ...ok, temperature: -1 }, status: 400, param: 'temperature' },
  { name: 'temperature too high', body: { ...ok, temperature: 2.5 }, status: 400, param: 'temperature' },
  { name: 'temperature infinite (1e999)', body: '{"prompt": "I am", "temperature": 1e999}', status: 400, param: 'temperature' },
  { name: 'temperature a string', body: { ...ok, temperature: 'hot' }, status: 400, param: 'temperature' },
  { name: 'top_p zero', body: { ...ok, top_p: 0 }, status: 400, param: 'top_p' },
  { name: 'top_p above 1', body: { ...ok, top_p: 1.5 }, status: 400, param: 'top_p' },
  { name: 'top_k -5', body: { ...ok, top_k: -5 }, status: 400, param: 'top_k' },
  { name: 'min_p 2', body: { ...ok, min_p: 2 }, status: 400, param: 'min_p' },
  { name: 'presence_penalty 3', body: { ...ok, presence_penalty: 3 }, status: 400, param: 'presence_penalty' },
  { name: 'frequency_penalty -3', body: { ...ok, frequency_penalty: -3 }, status: 400, param: 'frequency_penalty' },
  { name: 'repetition_penalty 0', body: { ...ok, repetition_penalty: 0 }, status: 400, param: 'repetition_penalty' },
  { name: 'n zero', body: { ...ok, n: 0 }, status: 400, param: 'n' },
  { name: 'n past the slots', body: { ...ok, n: 5, temperature: 1 }, status: 400, param: 'n' },
  { name: 'n > 1 with greedy sampling', body: { ...ok, n: 2, temperature: 0 }, status: 400, param: 'n' },
  { name: 'logprobs past max_logprobs', body: { ...ok, logprobs: 21 }, status: 400, param: 'logprobs' },
  { name: 'logprobs negative', body: { ...ok, logprobs: -1 }, status: 400, param: 'logprobs' },
  { name: 'seed fractional', body: { ...ok, seed: 1.5 }, status: 400, param: 'seed' },
  { name: 'stop an empty string', body: { ...ok, stop: [''] }, status: 400, param: 'stop' },
  { name: 'stop a number', body: { ...ok, stop: 5 }, status: 400, param: 'stop' },
  { name: 'too many stop strings', body: { ...ok, stop: Array.from({ length: 2000 }, (_, i) => `s${i}`) }, status: 400, param: 'stop' },
  { name: 'stream not a boolean', body: { ...ok, stream: 'yes' }, status: 400, param: 'stream' },
  { name: 'stream_options unknown key', body: { ...ok, stream: true, stream_options: { include_usage: true, x: 1 } }, status: 400, param: 'stream_options.x' },
  { name: 'stream_options without stream', body: { ...ok, stream_options: { include_usage: true } }, status: 400, param: 'stream_options' },
  { name: 'echo with logprobs', body: { ...ok, echo: true, logprobs: 1 }, status: 400, param: 'echo' },
  { name: 'min_tokens above max_tokens', body: { ...ok, min_tokens: 5 }, status: 400, param: 'min_tokens' },
  { name: 'stop_token_ids negative', body: { ...ok, stop_token_ids: [-1] }, status: 400, param: 'stop_token_ids[0]' },
  // Chat
  { name: 'chat: no messages', path: '/v1/chat/completions', body: { max_tokens: 2 }, status: 400, param: 'messages' },
  { name: 'chat: empty messages', path: '/v1/chat/completions', body: { messages: [] }, status: 400, param: 'messages' },
  { name: 'chat: unknown role', path: '/v1/chat/completions', body: { messages: [{ role: 'wizard', content: 'hi' }] }, status: 400, param: 'messages[0].role' },
  { name: 'chat: content a number', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 3 }] }, status: 400, param: 'messages[0].content' },
  { name: 'chat: an image part', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }] }] }, status: 400, param: 'messages[0].content' },
  { name: 'chat: message with unknown key', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 'hi', path: '/etc/passwd' }] }, status: 400, param: 'messages[0].path' },
  { name: 'chat: top_logprobs without logprobs', path: '/v1/chat/completions', body: { ...chat, top_logprobs: 2 }, status: 400, param: 'top_logprobs' },
  { name: 'chat: top_logprobs past max_logprobs', path: '/v1/chat/completions', body: { ...chat, logprobs: true, top_logprobs: 21 }, status: 400, param: 'top_logprobs' },
  { name: 'chat: logprobs a number', path: '/v1/chat/completions', body: { ...chat, logprobs: 3 }, status: 400, param: 'logprobs' },
  { name: 'chat: max_completion_tokens negative', path: '/v1/chat/completions', body: { ...chat, max_completion_tokens: -5 }, status: 400, param: 'max_completion_tokens' },
  { name: 'chat: template kwargs overriding messages', path: '/v1/chat/completions', body: { ...chat, chat_template_kwargs: { messages: 'x' } }, status: 400, param: 'chat_template_kwargs' },
  { name: 'chat: template kwargs nested object', path: '/v1/chat/completions', body: { ...chat, chat_template_kwargs: { enable_thinking: { a: 1 } } }, status: 400, param: 'chat_template_kwargs.enable_thinking' },
  { name: 'chat: too long for max-model-len', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 'hello '.repeat(400) }] }, status: 400, param: 'messages' },
  // Keys, routes, other endpoints
  { name: 'missing API key', body: ok, headers: { authorization: '' }, status: 401, param: null },
  { name: 'wrong API key', body: ok, headers: { authorization: 'Bearer sk-test-kez' }, status: 401, param: null },
  { name: 'API key with the wrong scheme', body: ok, headers: { authorization: `Basic ${KEY}` }, status: 401, param: null },
  { name: 'missing API key on /tokenize', path: '/tokenize', body: { prompt: 'x' }, headers: { authorization: '' }, status: 401 },
  { name: 'tokenize: both prompt and messages', path: '/tokenize', body: { prompt: 'x', messages: chat.messages }, status: 400 },
  { name: 'detokenize: id outside the vocabulary', path: '/detokenize', body: { tokens: [1, 999999] }, status: 400, param: 'tokens[1]' },
  { name: 'detokenize: ids as strings', path: '/detokenize', body: { tokens: ['1'] }, status: 400, param: 'tokens[0]' },
  { name: 'unknown route', path: '/v1/embeddings', body: { input: 'x' }, status: 404 },
  { name: 'wrong method', path: '/v1/completions', method: 'GET', body: undefined, status: 404 },
];

describe('bad input', () => {
  it(`has at least 30 cases (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  for (const c of cases) {
    it(`${c.name} → ${c.status}`, async () => {
      const url = `${h.url}${c.path ?? '/v1/completions'}`;
      const headers = { 'content-type': 'application/json', ...auth, ...c.headers };
      if (headers.authorization === '') delete (headers as Record<string, string>).authorization;
      const res = await fetch(url, {
        method: c.method ?? 'POST',
        headers,
        body: c.body === undefined ? undefined : typeof c.body === 'string' ? c.body : JSON.stringify(c.body),
      });
      const text = await res.text();
      if (process.env.SHOW_ERRORS) console.log(c.name, res.status, text);
      expect(res.status, text).toBe(c.status);
      const json = JSON.parse(text) as { error: Record<string, unknown> };
      expect(Object.keys(json)).toEqual(['error']);
      expect(Object.keys(json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(typeof json.error.message).toBe('string');
      expect((json.error.message as string).length).toBeGreaterThan(0);
      expect(typeof json.error.type).toBe('string');
      if (c.param !== undefined) expect(json.error.param, text).toBe(c.param);
      if (c.status === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer');
    });
  }

  it('the openai client sees the errors as typed API errors naming the field', async () => {
    const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const bad = await client.completions.create({ model: MODEL, prompt: 'I am', temperature: 5 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('temperature');
    const missing = await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    const wrongKey = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    expect(await wrongKey.models.list().catch((e: unknown) => e)).toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('keeps serving afterwards, and counted the errors by status', async () => {
    const res = await post(`${h.url}/v1/completions`, { model: MODEL, prompt: 'I am', max_tokens: 3, temperature: 0 }, auth);
    expect(res.status).toBe(200);
    expect(res.json.usage.completion_tokens).toBe(3);
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
    expect(await metric(h.url, 'qllm_http_requests_total', { route: '/v1/completions', status: '400' })).toBeGreaterThan(30);
    expect(await metric(h.url, 'qllm_http_requests_total', { status: '401' })).toBeGreaterThan(0);
  });
});
