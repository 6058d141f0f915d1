/**
 * The HTTP client on its own: the request body under vLLM's names, token ids from `token_ids` or (a vLLM without
 * return_token_ids) from the logprobs' `token_id:<id>` tokens, ranks among the returned top k, vLLM's -9999, and
 * server-sent events split anywhere (CRLF too) by a scripted server; errors mid-stream and HTTP errors as qllm errors.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, EngineBusyError, SamplingParams } from 'qllm';
import { completionBody, connectOpenAIServer, parseChoice } from './index.js';

describe('request body and choices', () => {
  it("sends every SamplingParams field under vLLM's name (top_k off as -1; seed, stop only when set)", () => {
    const body = completionBody('m', [1, 2], new SamplingParams({ temperature: 0.5, topK: 0, maxTokens: 7, stopTokenIds: [9], minTokens: 1 }));
    expect(body).toEqual({
      model: 'm', prompt: [1, 2], stream: true, n: 1, max_tokens: 7, temperature: 0.5, top_p: 1, top_k: -1, min_p: 0,
      presence_penalty: 0, frequency_penalty: 0, repetition_penalty: 1, stop_token_ids: [9], ignore_eos: false, min_tokens: 1,
      skip_special_tokens: true, include_stop_str_in_output: false, logprobs: 0, return_tokens_as_token_ids: true, return_token_ids: true,
    });
    expect(completionBody('m', [1], new SamplingParams({ seed: 4, stop: 'x', logprobs: 3, topK: 5 }))).toMatchObject({ seed: 4, stop: ['x'], logprobs: 3, top_k: 5 });
  });

  it('token ids from token_ids, or from the logprobs tokens; they must agree; text without ids is an error', () => {
    expect(parseChoice({ index: 0, text: 'ab', token_ids: [3, 4] }, false, 'u')).toEqual({ index: 0, tokenIds: [3, 4] });
    const lp: { tokens: string[]; token_logprobs: number[]; top_logprobs: Array<Record<string, number>> } = { tokens: ['token_id:3', 'token_id:4'], token_logprobs: [-0.1, -2], top_logprobs: [{ 'token_id:3': -0.1 }, { 'token_id:4': -2 }] };
    expect(parseChoice({ index: 1, text: 'ab', logprobs: lp, finish_reason: 'stop', stop_reason: 'b' }, false, 'u'))
      .toEqual({ index: 1, tokenIds: [3, 4], finishReason: 'stop', stopReason: 'b' });
    expect(() => parseChoice({ index: 0, text: 'ab', token_ids: [3, 5], logprobs: lp }, false, 'u')).toThrow(/disagree/);
    expect(() => parseChoice({ index: 0, text: 'ab' }, false, 'u')).toThrow(/without token ids/);
    expect(() => parseChoice({ index: 0, text: 'a', logprobs: { tokens: ['a'] } }, false, 'u')).toThrow(/not 'token_id:<id>'/);
    expect(parseChoice({ index: 0, text: '', finish_reason: 'length' }, false, 'u')).toEqual({ index: 0, tokenIds: [], finishReason: 'length', stopReason: null });
  });

  it('logprobs: ranks among the top k returned, a chosen token outside them ranks k + 1, -9999 is -Infinity', () => {
    const d = parseChoice({
      index: 0, text: 'x', token_ids: [7, 8],
      logprobs: {
        tokens: ['token_id:7', 'token_id:8'], token_logprobs: [-3, -9999],
        top_logprobs: [{ 'token_id:7': -3, 'token_id:1': -0.5, 'token_id:2': -1 }, { 'token_id:1': -0.01 }],
      },
    }, true, 'u');
    expect(d.logprobs).toEqual([
      { 7: { logprob: -3, rank: 3 }, 1: { logprob: -0.5, rank: 1 }, 2: { logprob: -1, rank: 2 } },
      { 1: { logprob: -0.01, rank: 1 }, 8: { logprob: -Infinity, rank: 2 } },
    ]);
  });
});

describe('the stream from a scripted server', () => {
  let server: http.Server;
  let url: string;
  let script: (req: http.IncomingMessage, res: http.ServerResponse, body: any) => void;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        if (req.url === '/v1/models') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: [{ id: 'a' }, { id: 'b', max_model_len: 64 }] }));
          return;
        }
        script(req, res, raw ? JSON.parse(raw) : undefined);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const request = (params = new SamplingParams({ maxTokens: 4 })) => ({ requestId: '1', promptTokenIds: [1, 2], params, signal: new AbortController().signal });

  it('reads events split anywhere, CRLF or LF; picks the named model; sends the API key', async () => {
    let seen: { auth?: string; body?: any } = {};
    script = (req, res, body) => {
      seen = { auth: req.headers.authorization, body };
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const text = `data: ${JSON.stringify({ choices: [{ index: 0, text: 'a', token_ids: [5] }] })}\r\n\r\n` +
        `data: ${JSON.stringify({ choices: [{ index: 0, text: 'b', token_ids: [6, 7], finish_reason: 'length' }] })}\n\ndata: [DONE]\n\n`;
      let i = 0;
      const step = () => {
        if (i >= text.length) return void res.end();
        res.write(text.slice(i, i + 7));
        i += 7;
        setImmediate(step);
      };
      step();
    };
    const engine = await connectOpenAIServer({ url: `${url}/v1/`, apiKey: 'k', servedModelName: 'b' });
    expect([engine.url, engine.servedModelName, engine.maxModelLen]).toEqual([url, 'b', 64]);
    const deltas = [];
    for await (const d of engine.generate(request())) deltas.push(d);
    expect(deltas).toEqual([{ index: 0, tokenIds: [5] }, { index: 0, tokenIds: [6, 7], finishReason: 'length', stopReason: null }]);
    expect(seen.auth).toBe('Bearer k');
    expect(seen.body).toMatchObject({ model: 'b', prompt: [1, 2], stream: true, max_tokens: 4 });
    await expect(connectOpenAIServer({ url, servedModelName: 'c' })).rejects.toThrow(/does not serve a model named 'c' \(it serves: a, b\)/);
  });

  it('HTTP 400 → ConfigError, 429 → EngineBusyError, an error event mid-stream → an error with its message', async () => {
    const engine = await connectOpenAIServer({ url });
    script = (_req, res) => void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'max_tokens is too large' } }));
    await expect(engine.generate(request())[Symbol.asyncIterator]().next()).rejects.toThrow(new ConfigError(`${url}: max_tokens is too large`));
    script = (_req, res) => void res.writeHead(429).end(JSON.stringify({ error: { message: 'busy' } }));
    await expect(engine.generate(request())[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(EngineBusyError);
    script = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify({ choices: [{ index: 0, text: 'a', token_ids: [5] }] })}\n\ndata: ${JSON.stringify({ error: { message: 'engine died', code: 500 } })}\n\ndata: [DONE]\n\n`);
    };
    const it = engine.generate(request())[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual({ index: 0, tokenIds: [5] });
    await expect(it.next()).rejects.toThrow(/engine died.*HTTP 500/);
    script = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify({ object: 'error', message: 'prompt too long', type: 'BadRequestError', code: 400 })}\n\ndata: [DONE]\n\n`);
    };
    await expect(engine.generate(request())[Symbol.asyncIterator]().next()).rejects.toThrow(new ConfigError(`${url}: prompt too long`));
  });
});
