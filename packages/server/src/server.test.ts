/**
 * The server through the official `openai` client, over a real tiny Qwen3 on 127.0.0.1: completions and chat,
 * streamed and not, against `LLM.generate` / `LLM.chat` on the same engine (greedy: exactly equal, since each runs
 * alone), n > 1, logprobs, stop, usage, token-id and batched prompts, echo, tokenize/detokenize, /v1/models.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SamplingParams, type LLM } from 'qllm';
import { metric, MODEL, newLLM, post, startServer, tinyModel, type Harness } from './__fixtures__/harness.js';

let h: Harness;
let llm: LLM;
let remove: () => Promise<void>;

beforeAll(async () => {
  const model = await tinyModel(11);
  remove = model.remove;
  llm = newLLM(model.dir);
  h = await startServer(llm);
});
afterAll(async () => {
  await h?.stop();
  await llm?.close();
  await remove?.();
});

const greedy = (maxTokens: number, extra: ConstructorParameters<typeof SamplingParams>[0] = {}) => new SamplingParams({ temperature: 0, maxTokens, ...extra });

async function streamCompletion(body: Record<string, unknown>) {
  const stream = await h.client.completions.create({ model: MODEL, prompt: 'I am', stream: true, ...body } as never);
  const texts: string[] = [];
  const finish: Array<string | null> = [];
  let usage: unknown;
  let chunks = 0;
  for await (const chunk of stream as unknown as AsyncIterable<{ choices: Array<{ index: number; text: string; finish_reason: string | null }>; usage?: unknown }>) {
    chunks++;
    for (const c of chunk.choices) {
      texts[c.index] = (texts[c.index] ?? '') + c.text;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  return { texts, finish, usage, chunks };
}

describe('completions', () => {
  it('greedy: non-streamed = streamed = LLM.generate, with usage', async () => {
    const [ref] = await llm.generate(['The river'], greedy(12));
    const res = await h.client.completions.create({ model: MODEL, prompt: 'The river', max_tokens: 12, temperature: 0 });
    expect(res.object).toBe('text_completion');
    expect(res.model).toBe(MODEL);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]!.text).toBe(ref!.outputs[0]!.text);
    expect(res.choices[0]!.finish_reason).toBe(ref!.outputs[0]!.finishReason);
    expect(res.usage).toEqual({ prompt_tokens: ref!.promptTokenIds.length, completion_tokens: 12, total_tokens: ref!.promptTokenIds.length + 12 });

    const streamed = await streamCompletion({ prompt: 'The river', max_tokens: 12, temperature: 0, stream_options: { include_usage: true } });
    expect(streamed.texts[0]).toBe(ref!.outputs[0]!.text);
    expect(streamed.finish[0]).toBe('length');
    expect(streamed.chunks).toBeGreaterThan(2); // really streamed, token by token
    expect(streamed.usage).toEqual(res.usage);
  });

  it('token-id prompts and batches of prompts: one choice per prompt, as each alone', async () => {
    const ids = [40, 1079, 264, 1632];
    const refs = await llm.generate(['Today is', { promptTokenIds: ids }, { promptTokenIds: ids.slice(0, 2) }], greedy(6));
    const single = await h.client.completions.create({ model: MODEL, prompt: ids, max_tokens: 6, temperature: 0 });
    expect(single.choices[0]!.text).toBe(refs[1]!.outputs[0]!.text);
    const batch = await post(`${h.url}/v1/completions`, { prompt: ['Today is', 'Today is'], max_tokens: 6, temperature: 0 });
    expect(batch.json.choices.map((c: { index: number }) => c.index)).toEqual([0, 1]);
    for (const c of batch.json.choices) expect(c.text).toBe(refs[0]!.outputs[0]!.text);
    const idBatch = await post(`${h.url}/v1/completions`, { prompt: [ids, ids.slice(0, 2)], max_tokens: 6, temperature: 0 });
    expect(idBatch.json.choices.map((c: { text: string }) => c.text)).toEqual([refs[1]!.outputs[0]!.text, refs[2]!.outputs[0]!.text]);
    expect(idBatch.json.usage.prompt_tokens).toBe(6);
    const streamed = await streamCompletion({ prompt: [ids, ids.slice(0, 2)], max_tokens: 6, temperature: 0 });
    expect(streamed.texts).toEqual([refs[1]!.outputs[0]!.text, refs[2]!.outputs[0]!.text]);
  });

  it('n > 1 with a seed: n choices, the same streamed and not', async () => {
    const body = { prompt: 'Once upon', max_tokens: 8, temperature: 1, seed: 1234, n: 3 };
    const res = await h.client.completions.create({ model: MODEL, ...body });
    expect(res.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(res.usage!.completion_tokens).toBe(24);
    expect(new Set(res.choices.map((c) => c.text)).size).toBeGreaterThan(1);
    const streamed = await streamCompletion(body);
    expect(streamed.texts).toEqual(res.choices.map((c) => c.text));
  });

  it('logprobs: the engine\'s numbers, k alternatives per token, offsets into the text', async () => {
    const [ref] = await llm.generate(['Hello'], greedy(5, { logprobs: 3 }));
    const res = await h.client.completions.create({ model: MODEL, prompt: 'Hello', max_tokens: 5, temperature: 0, logprobs: 3 });
    const lp = res.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(5);
    const out = ref!.outputs[0]!;
    lp.token_logprobs!.forEach((v, i) => expect(v).toBeCloseTo(out.logprobs![i]![out.tokenIds[i]!]!.logprob, 6));
    for (const top of lp.top_logprobs!) expect(Object.keys(top!).length).toBeGreaterThanOrEqual(3);
    expect(lp.text_offset![0]).toBe(0);
    expect(lp.text_offset![1]).toBe(lp.tokens![0]!.length);
    const ids = await post(`${h.url}/v1/completions`, { prompt: 'Hello', max_tokens: 5, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true });
    expect(ids.json.choices[0].logprobs.tokens).toEqual(out.tokenIds.map((t) => `token_id:${t}`));
  });

  it('stop strings end the completion before the stop text, streamed and not', async () => {
    const [ref] = await llm.generate(['The river'], greedy(16));
    const text = ref!.outputs[0]!.text;
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    const expected = text.slice(0, text.indexOf(stop));
    const res = await h.client.completions.create({ model: MODEL, prompt: 'The river', max_tokens: 16, temperature: 0, stop: [stop] });
    expect(res.choices[0]!.text).toBe(expected);
    expect(res.choices[0]!.finish_reason).toBe('stop');
    const streamed = await streamCompletion({ prompt: 'The river', max_tokens: 16, temperature: 0, stop });
    expect(streamed.texts[0]).toBe(expected);
    expect(streamed.finish[0]).toBe('stop');
  });

  it('echo puts the prompt before the completion', async () => {
    const [ref] = await llm.generate(['I am'], greedy(4));
    const res = await h.client.completions.create({ model: MODEL, prompt: 'I am', max_tokens: 4, temperature: 0, echo: true });
    expect(res.choices[0]!.text).toBe(`I am${ref!.outputs[0]!.text}`);
    const streamed = await streamCompletion({ prompt: 'I am', max_tokens: 4, temperature: 0, echo: true });
    expect(streamed.texts[0]).toBe(`I am${ref!.outputs[0]!.text}`);
  });
});

describe('chat completions', () => {
  const messages = [
    { role: 'system' as const, content: 'You are terse.' },
    { role: 'user' as const, content: 'Name a river.' },
  ];

  it('greedy, thinking off: content = streamed content = LLM.chat, with usage', async () => {
    const [ref] = await llm.chat(messages, greedy(10), { enableThinking: false });
    const body = { model: MODEL, messages, max_completion_tokens: 10, temperature: 0, chat_template_kwargs: { enable_thinking: false } };
    const res = await h.client.chat.completions.create(body as never) as unknown as {
      object: string; choices: Array<{ message: { role: string; content: string; reasoning_content?: unknown }; finish_reason: string }>; usage: { prompt_tokens: number; completion_tokens: number };
    };
    expect(res.object).toBe('chat.completion');
    expect(res.choices[0]!.message.role).toBe('assistant');
    expect(res.choices[0]!.message.content).toBe(ref!.outputs[0]!.text);
    expect(res.choices[0]!.message.reasoning_content).toBeUndefined();
    expect(res.usage.prompt_tokens).toBe(ref!.promptTokenIds.length);
    expect(res.usage.completion_tokens).toBe(10);

    const stream = await h.client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as never);
    let content = '';
    let role: string | undefined;
    let usage: unknown;
    let finish: string | null = null;
    for await (const chunk of stream as unknown as AsyncIterable<{ choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>; usage?: unknown }>) {
      for (const c of chunk.choices) {
        role ??= c.delta.role;
        content += c.delta.content ?? '';
        finish = c.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(role).toBe('assistant');
    expect(content).toBe(ref!.outputs[0]!.text);
    expect(finish).toBe('length');
    expect(usage).toEqual(expect.objectContaining({ prompt_tokens: res.usage.prompt_tokens, completion_tokens: 10 }));
  });

  it('thinking on (Qwen3 default): an unclosed think block is reasoning_content, streamed the same', async () => {
    const [ref] = await llm.chat(messages, greedy(8));
    const res = await post(`${h.url}/v1/chat/completions`, { messages, max_tokens: 8, temperature: 0 });
    expect(res.status).toBe(200);
    const text = ref!.outputs[0]!.text.replace('<think>', '');
    expect(text.includes('</think>')).toBe(false); // noise from random weights: the block never closes
    expect(res.json.choices[0].message.reasoning_content).toBe(text);
    expect(res.json.choices[0].message.content).toBeNull();
    const streamed = await post(`${h.url}/v1/chat/completions`, { messages, max_tokens: 8, temperature: 0, stream: true });
    const events = streamed.text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const deltas = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)).choices[0].delta);
    expect(deltas.map((d: { reasoning_content?: string }) => d.reasoning_content ?? '').join('')).toBe(text);
    expect(deltas.map((d: { content?: string }) => d.content ?? '').join('')).toBe('');
  });

  it('logprobs with top_logprobs, and n > 1', async () => {
    const res = await h.client.chat.completions.create({ model: MODEL, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 });
    const content = res.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(4);
    for (const t of content) {
      expect(t.top_logprobs).toHaveLength(2);
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(Buffer.from(t.bytes!).toString('utf8')).toBe(t.token);
    }
    const many = await h.client.chat.completions.create({ model: MODEL, messages, max_tokens: 4, temperature: 0.9, seed: 7, n: 2 });
    expect(many.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(many.usage!.completion_tokens).toBe(8);
  });
});

describe('other routes', () => {
  it('/v1/models lists the served model', async () => {
    const models = await h.client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('/tokenize and /detokenize round-trip, and /tokenize renders chat as the chat endpoint does', async () => {
    const tok = await post(`${h.url}/tokenize`, { prompt: 'Hello world' });
    expect(tok.json).toEqual({ count: 2, max_model_len: 256, tokens: (await llm.getTokenizer())!.encode('Hello world'), token_strs: null });
    const detok = await post(`${h.url}/detokenize`, { tokens: tok.json.tokens });
    expect(detok.json).toEqual({ prompt: 'Hello world' });
    const chat = await post(`${h.url}/tokenize`, { messages: [{ role: 'user', content: 'hi' }] });
    const completion = await post(`${h.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
    expect(chat.json.count).toBe(completion.json.usage.prompt_tokens);
    // A long text is encoded on the tokenizer thread: the same ids.
    const longText = 'The river discovered a letter. '.repeat(200);
    const long = await post(`${h.url}/tokenize`, { prompt: longText });
    expect(long.json.tokens).toEqual((await llm.getTokenizer())!.encode(longText));
  });

  it('/metrics: Prometheus text with the request, token, engine and latency metrics, counting what was served', async () => {
    const res = await fetch(`${h.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of [
      'qllm_http_requests_total', 'qllm_prompt_tokens_total', 'qllm_generation_tokens_total', 'qllm_request_success_total',
      'qllm_num_sequences_running', 'qllm_num_requests_waiting', 'qllm_kv_cache_usage_perc',
      'qllm_time_to_first_token_seconds_bucket', 'qllm_inter_token_latency_seconds_bucket', 'qllm_e2e_request_latency_seconds_bucket',
      'qllm_process_resident_memory_bytes',
    ]) expect(text, name).toContain(`${name}{`);
    const before = {
      prompt: await metric(h.url, 'qllm_prompt_tokens_total'),
      generated: await metric(h.url, 'qllm_generation_tokens_total'),
      ttft: await metric(h.url, 'qllm_time_to_first_token_seconds_count'),
      itl: await metric(h.url, 'qllm_inter_token_latency_seconds_count'),
      ok: await metric(h.url, 'qllm_http_requests_total', { route: '/v1/completions', status: '200' }),
    };
    const r = await h.client.completions.create({ model: MODEL, prompt: 'Metrics count', max_tokens: 5, temperature: 0 });
    expect(await metric(h.url, 'qllm_prompt_tokens_total')).toBe(before.prompt + r.usage!.prompt_tokens);
    expect(await metric(h.url, 'qllm_generation_tokens_total')).toBe(before.generated + 5);
    expect(await metric(h.url, 'qllm_time_to_first_token_seconds_count')).toBe(before.ttft + 1);
    expect(await metric(h.url, 'qllm_inter_token_latency_seconds_count')).toBe(before.itl + 4);
    expect(await metric(h.url, 'qllm_http_requests_total', { route: '/v1/completions', status: '200' })).toBe(before.ok + 1);
    expect(await metric(h.url, 'qllm_num_sequences_running')).toBe(0);
  });

  it('/health answers 200 with the model loaded', async () => {
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
  });
});
