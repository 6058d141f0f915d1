/**
 * The HTTP path: `new LLM({ model, backend: 'ascend', server })` driving an OpenAI-compatible server, here `qllm
 * serve` (createServer over a CPU LLM on a generated tiny Qwen3, 127.0.0.1, a real port) as the stand-in for
 * vLLM-MindSpore's: the same protocol, only the device differs. Its results must be the local CPU's: greedy tokens
 * and text identical, logprobs equal, stream deltas concatenating to the non-streamed output, n > 1 with a seed,
 * stop strings and stop token ids, chat, abort (the server frees the slot) and the server's refusals as errors.
 * Then the model-level conformance checks through LLM (@qllm/testing/conformance's runLlmConformance).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, LLM, SamplingParams, type RequestOutput } from 'qllm';
import { createServer, type QllmServer } from '@qllm/server';
import { makeTinyQwen3 } from '@qllm/testing';
import { runLlmConformance } from '@qllm/testing/conformance';

let root: string;
let dir: string;
let local: LLM;
let server: QllmServer;
let url: string;
let remote: LLM;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'qllm-ascend-http-'));
  dir = path.join(root, 'tiny');
  await makeTinyQwen3(dir, { seed: 11 });
  local = new LLM({ model: dir, backend: 'cpu', threads: 2, maxNumSeqs: 8, maxModelLen: 256 });
  server = await createServer({ llm: local, servedModelName: 'tiny-qwen3' });
  url = await server.listen({ host: '127.0.0.1', port: 0 });
  remote = new LLM({ model: dir, backend: 'ascend', server: url });
  await remote.ready();
});
afterAll(async () => {
  await remote?.close();
  await server?.close({ timeoutMs: 1000 });
  await local?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

const greedy = (maxTokens: number, extra: ConstructorParameters<typeof SamplingParams>[0] = {}) => new SamplingParams({ temperature: 0, maxTokens, ...extra });

/** The parts of an output that must agree between the two paths (not the request id or the times). */
function same(a: RequestOutput, b: RequestOutput): void {
  expect(a.prompt).toBe(b.prompt);
  expect(a.promptTokenIds).toEqual(b.promptTokenIds);
  expect(a.finished).toBe(b.finished);
  expect(a.outputs.length).toBe(b.outputs.length);
  a.outputs.forEach((o, i) => {
    const p = b.outputs[i]!;
    expect(o.tokenIds).toEqual(p.tokenIds);
    expect(o.text).toBe(p.text);
    expect(o.finishReason).toBe(p.finishReason);
    expect(o.stopReason).toBe(p.stopReason);
    if (p.cumulativeLogprob === null) expect(o.cumulativeLogprob).toBeNull();
    else expect(o.cumulativeLogprob).toBeCloseTo(p.cumulativeLogprob, 5);
    expect(o.logprobs?.length).toBe(p.logprobs?.length);
    o.logprobs?.forEach((entry, t) => {
      const want = p.logprobs![t]!;
      expect(Object.keys(entry).sort()).toEqual(Object.keys(want).sort());
      for (const [id, lp] of Object.entries(want)) {
        expect(entry[Number(id)]!.logprob).toBeCloseTo(lp.logprob, 5);
        // Ranks are exact for the top k; the OpenAI shape has none, so a chosen token outside the top k gets the
        // lower bound k + 1 (the entry's size).
        const rank = entry[Number(id)]!.rank;
        if (rank !== lp.rank) expect([rank, lp.rank > rank]).toEqual([Object.keys(want).length, true]);
      }
    });
  });
}

describe("backend 'ascend' over HTTP (qllm serve as the stand-in server)", () => {
  it('attaches: ready() is the remote model (no weights read here), the server reports its context length', async () => {
    const loaded = await remote.ready();
    expect(loaded.backend.name).toBe('ascend');
    expect('remote' in loaded && loaded.remote.url).toBe(url);
    expect('remote' in loaded && loaded.remote.maxModelLen).toBe(256);
    expect(loaded.config.vocabSize).toBe(151936);
    await expect(remote.cacheLayout()).rejects.toThrow(/keeps its KV cache in its server/);
  });

  it('greedy: token ids, text, finish reasons and logprobs (ranks included) equal the local CPU result', async () => {
    const prompts = ['The river', 'I am', { promptTokenIds: [40, 1079, 264] }];
    const params = greedy(12, { logprobs: 5 });
    const [want, got] = await Promise.all([local.generate(prompts, params), remote.generate(prompts, params)]);
    expect(got).toHaveLength(3);
    got.forEach((g, i) => same(g, want[i]!));
    expect(got[0]!.outputs[0]!.tokenIds).toHaveLength(12);
    const m = got[0]!.metrics!;
    expect(m.numGenerationTokens).toBe(12);
    expect(m.arrivalTime).toBeLessThanOrEqual(m.firstScheduledTime!);
    expect(m.firstScheduledTime!).toBeLessThanOrEqual(m.firstTokenTime!);
    expect(m.firstTokenTime!).toBeLessThanOrEqual(m.lastTokenTime!);
    expect(m.lastTokenTime!).toBeLessThanOrEqual(m.finishedTime!);
  });

  it('without logprobs: the same tokens and text, and logprobs null', async () => {
    const [[want], [got]] = await Promise.all([local.generate('Today is', greedy(10)), remote.generate('Today is', greedy(10))]);
    same(got!, want!);
    expect(got!.outputs[0]!.logprobs).toBeNull();
    expect(got!.outputs[0]!.cumulativeLogprob).toBeNull();
  });

  it('stream: DELTA outputs concatenate to the non-streamed output; only the last is finished', async () => {
    const params = greedy(16, { logprobs: 2 });
    const [full] = await remote.generate('Once upon a time', params);
    const deltas: RequestOutput[] = [];
    for await (const d of remote.stream('Once upon a time', params)) deltas.push(d);
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.slice(0, -1).every((d) => !d.finished)).toBe(true);
    expect(deltas.at(-1)!.finished).toBe(true);
    const o = full!.outputs[0]!;
    expect(deltas.flatMap((d) => d.outputs[0]!.tokenIds)).toEqual(o.tokenIds);
    expect(deltas.map((d) => d.outputs[0]!.text).join('')).toBe(o.text);
    expect(deltas.flatMap((d) => d.outputs[0]!.logprobs!)).toEqual(o.logprobs);
    expect(deltas.at(-1)!.outputs[0]!.finishReason).toBe(o.finishReason);
  });

  it('n > 1 with a seed: every completion equals the local one (the server samples with the request\'s seed)', async () => {
    const params = new SamplingParams({ n: 3, temperature: 0.9, topP: 0.95, seed: 1234, maxTokens: 10, logprobs: 1 });
    const [[want], [got]] = await Promise.all([local.generate('I am', params), remote.generate('I am', params)]);
    same(got!, want!);
    expect(new Set(got!.outputs.map((o) => o.tokenIds.join())).size).toBeGreaterThan(1); // really sampled
    // and streamed: each completion's deltas concatenate to it
    const texts = ['', '', ''];
    for await (const d of remote.stream('I am', params)) for (const o of d.outputs) texts[o.index] += o.text;
    expect(texts).toEqual(want!.outputs.map((o) => o.text));
  });

  it('stop strings and stop token ids: the same stop, the same truncated text, the same reasons', async () => {
    const [plain] = await local.generate('The river', greedy(24));
    const text = plain!.outputs[0]!.text;
    const ids = plain!.outputs[0]!.tokenIds;
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
    expect(stop.trim().length).toBeGreaterThan(0);
    for (const params of [
      greedy(24, { stop: [stop] }),
      greedy(24, { stop: [stop], includeStopStrInOutput: true }),
      greedy(24, { stopTokenIds: [ids[5]!] }),
    ]) {
      const [[want], [got]] = await Promise.all([local.generate('The river', params), remote.generate('The river', params)]);
      same(got!, want!);
      expect(got!.outputs[0]!.finishReason).toBe('stop');
      const deltas: string[] = [];
      for await (const d of remote.stream('The river', params)) deltas.push(d.outputs[0]!.text);
      expect(deltas.join('')).toBe(want!.outputs[0]!.text);
    }
  });

  it('chat: the chat template is applied here, the result equals the local chat', async () => {
    const messages = [{ role: 'user' as const, content: 'Hi there' }];
    const [[want], [got]] = await Promise.all([local.chat(messages, greedy(8), { enableThinking: false }), remote.chat(messages, greedy(8), { enableThinking: false })]);
    same(got!, want!);
  });

  it('abort: the stream ends with finish reason abort, and the server frees the sequence', async () => {
    const controller = new AbortController();
    const outs: RequestOutput[] = [];
    for await (const d of remote.stream('Tell me', greedy(200, { ignoreEos: true }), { signal: controller.signal })) {
      outs.push(d);
      if (outs.length === 3) controller.abort();
    }
    expect(outs.at(-1)!.finished).toBe(true);
    expect(outs.at(-1)!.outputs[0]!.finishReason).toBe('abort');
    expect(outs.flatMap((o) => o.outputs[0]!.tokenIds).length).toBeLessThan(200);
    const until = Date.now() + 10_000;
    while ((await local.stats()).running > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect((await local.stats()).running).toBe(0);
    expect((await remote.stats()).running).toBe(0);
    // leaving the loop early aborts too
    for await (const d of remote.stream('Tell me', greedy(200, { ignoreEos: true }))) if (d.outputs[0]!.tokenIds.length) break;
    const until2 = Date.now() + 10_000;
    while ((await local.stats()).running > 0 && Date.now() < until2) await new Promise((r) => setTimeout(r, 20));
    expect((await local.stats()).running).toBe(0);
  });

  it("the server's refusals are errors naming what it said; the LLM's own checks run before any request", async () => {
    const long = { promptTokenIds: Array.from({ length: 250 }, (_, i) => 100 + i) };
    await expect(remote.generate(long, greedy(10))).rejects.toThrow(ConfigError);
    await expect(remote.generate(long, greedy(10))).rejects.toThrow(/max_model_len 256/);
    await expect(remote.generate({ promptTokenIds: [1, 999999] }, greedy(4))).rejects.toThrow(/outside the vocabulary/);
    await expect(remote.generate('x', greedy(4, { logprobs: 21 }))).rejects.toThrow(/maxLogprobs 20/);
    // a refusal only the server knows: n beyond its slots (400 from qllm serve, --max-num-seqs 8)
    await expect(remote.generate('x', new SamplingParams({ n: 9, temperature: 1, maxTokens: 2 }))).rejects.toThrow(new RegExp(`${url.replace(/[.]/g, '\\.')}: n = 9 completions need 9 KV-cache slots`));
  });

  it('an unreachable server fails at ready() with a clear message', async () => {
    await expect(new LLM({ model: dir, backend: 'ascend', server: 'http://127.0.0.1:9' }).ready()).rejects.toThrow(/cannot reach the OpenAI-compatible server at http:\/\/127\.0\.0\.1:9/);
  });
});

runLlmConformance("backend 'ascend' over HTTP (qllm serve)", async () => ({ llm: remote, dir }));
