/**
 * The batching engine through the public API: many requests of mixed lengths and sampling parameters, some added
 * mid-decode and some aborted, each get exactly what they get alone; streaming deltas add up to the whole; the cache
 * is bound in place; bad requests fail alone.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineBusyError, GRAPH_IO, LLM, SamplingParams, type BackendSessionV1, type PromptInput, type RequestOutput } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';

let root: string;
let modelDir: string;
let solo: LLM;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-engine-'));
  modelDir = path.join(root, 'tiny');
  await makeTinyQwen3(modelDir, { seed: 7 });
  solo = await LLM.create({ model: modelDir, threads: 2, maxNumSeqs: 4, maxModelLen: 512, seed: 99 });
}, 300_000);
afterAll(async () => {
  await solo?.close();
  await fs.rm(root, { recursive: true, force: true });
});

/** Deterministic prompt ids (ordinary tokens, no specials). */
const idsPrompt = (length: number, salt: number): PromptInput => ({
  promptTokenIds: Array.from({ length }, (_, i) => 100 + ((i * 7919 + salt * 104729) % 150000)),
});

interface Case {
  prompt: PromptInput;
  params: SamplingParams;
}

function cases(): Case[] {
  const lengths = [1, 3, 7, 12, 25, 40, 64, 90, 120, 150, 180, 210, 240, 260, 280, 300];
  const texts = ['I am', 'Today is', 'The river discovered a letter', 'Llama is'];
  return lengths.map((length, i) => {
    const prompt = i % 4 === 3 ? texts[(i >> 2) % texts.length]! : idsPrompt(length, i);
    const kind = i % 5;
    const params =
      kind === 0 ? new SamplingParams({ temperature: 0, maxTokens: 12, logprobs: 3 })
      : kind === 1 ? new SamplingParams({ temperature: 0.8, topP: 0.9, seed: 1000 + i, maxTokens: 10 })
      : kind === 2 ? new SamplingParams({ temperature: 0, maxTokens: 14, stop: ['ing', ' the', '颈'] })
      : kind === 3 ? new SamplingParams({ temperature: 1, topK: 40, seed: 2000 + i, maxTokens: 8, n: 3 })
      : new SamplingParams({ temperature: 0, maxTokens: 9, ignoreEos: true, logprobs: 0 });
    return { prompt, params };
  });
}

/** Token i of a completion may be compared while every earlier step of the solo run was decided by more than 1e-3. */
function comparableSteps(out: RequestOutput['outputs'][number]): number {
  const logprobs = out.logprobs!;
  for (let s = 0; s < logprobs.length; s++) {
    const top = Object.values(logprobs[s]!).map((l) => l.logprob).sort((a, b) => b - a);
    if (top.length > 1 && top[0]! - top[1]! < 1e-3) return s + 1; // this step's token is still compared, not later ones
  }
  return logprobs.length;
}

/** The solo run of a case, with logprobs ≥ 2 so the top-2 gap of every step is known (logprobs do not change sampling). */
async function runAlone(c: Case): Promise<RequestOutput> {
  const params = new SamplingParams({ ...c.params, logprobs: Math.max(2, c.params.logprobs ?? 0) });
  const [out] = await solo.generate([c.prompt], params);
  return out!;
}

function expectSameAsSolo(got: RequestOutput, alone: RequestOutput, c: Case): void {
  expect(got.outputs).toHaveLength(alone.outputs.length);
  got.outputs.forEach((o, k) => {
    const ref = alone.outputs[k]!;
    const steps = comparableSteps(ref);
    expect(o.tokenIds.slice(0, steps)).toEqual(ref.tokenIds.slice(0, steps));
    if (steps >= ref.tokenIds.length && o.tokenIds.length === ref.tokenIds.length) {
      expect(o.text).toBe(ref.text);
      expect(o.finishReason).toBe(ref.finishReason);
      expect(o.stopReason).toEqual(ref.stopReason);
    }
    if (c.params.logprobs !== undefined) {
      for (let s = 0; s < Math.min(steps, o.logprobs!.length); s++) {
        const mine = o.logprobs![s]!;
        const theirs = ref.logprobs![s]!;
        for (const [id, lp] of Object.entries(mine)) if (theirs[Number(id)]) expect(Math.abs(lp.logprob - theirs[Number(id)]!.logprob)).toBeLessThan(1e-4);
      }
    }
  });
}

describe('continuous batching', () => {
  it('16 mixed requests, some added mid-decode and some aborted, each equal to running alone', async () => {
    // Fewer slots than sequences (requests queue), and a small token budget (long prompts prefill in chunks).
    const llm = await LLM.create({ model: modelDir, threads: 2, maxNumSeqs: 6, maxModelLen: 512, maxNumBatchedTokens: 48, seed: 5 });
    try {
      const all = cases();
      const first = all.slice(0, 10);
      const later = all.slice(10);
      const firstBatch = llm.generate(first.map((c) => c.prompt), first.map((c) => c.params));
      // Wait until the engine is decoding, then add the rest: two streamed to the end, two aborted mid-stream.
      const watcher = llm.stream(idsPrompt(5, 99), new SamplingParams({ temperature: 0, maxTokens: 3 }));
      for await (const _ of watcher) break;
      const laterBatch = llm.generate(later.slice(0, 4).map((c) => c.prompt), later.slice(0, 4).map((c) => c.params));
      const aborted = [0, 1].map(async (i) => {
        const controller = new AbortController();
        const outs: RequestOutput[] = [];
        for await (const out of llm.stream(later[4 + i]!.prompt, later[4 + i]!.params, { signal: controller.signal })) {
          outs.push(out);
          if (outs.length === 2) controller.abort();
        }
        return outs;
      });
      const [got1, got2, ...abortedOuts] = await Promise.all([firstBatch, laterBatch, ...aborted]);
      for (const outs of abortedOuts) {
        const last = outs.at(-1)!;
        expect(last.finished).toBe(true);
        expect(last.outputs.every((o) => o.finishReason === 'abort' || o.finishReason !== null)).toBe(true);
        expect(last.outputs.some((o) => o.finishReason === 'abort')).toBe(true);
      }
      const got = [...got1, ...got2];
      const run = [...first, ...later.slice(0, 4)];
      for (const [i, c] of run.entries()) expectSameAsSolo(got[i]!, await runAlone(c), c);
      expect((await llm.stats()).slotsInUse).toBe(0);
    } finally {
      await llm.close();
    }
  }, 300_000);

  it('seeded sampling is reproducible, batched or not', async () => {
    const params = new SamplingParams({ temperature: 1, topP: 0.95, seed: 42, maxTokens: 10 });
    const [a] = await solo.generate([idsPrompt(20, 1)], params);
    const [b, , c] = await solo.generate([idsPrompt(20, 1), idsPrompt(33, 2), idsPrompt(20, 1)], params);
    expect(b!.outputs[0]!.tokenIds).toEqual(a!.outputs[0]!.tokenIds);
    expect(c!.outputs[0]!.tokenIds).toEqual(a!.outputs[0]!.tokenIds);
  });
});

describe('streaming', () => {
  it('the concatenated deltas equal the non-streamed output, with metrics filled in', async () => {
    for (const params of [
      new SamplingParams({ temperature: 0, maxTokens: 20, logprobs: 2 }),
      new SamplingParams({ temperature: 0, maxTokens: 20, stop: ['ing', 'the'] }),
      new SamplingParams({ temperature: 0.7, seed: 3, maxTokens: 12, n: 2 }),
    ]) {
      const [whole] = await solo.generate(['The river discovered a letter written in 1894'], params);
      const text = ['', ''];
      const ids: number[][] = [[], []];
      const logprobs: unknown[][] = [[], []];
      let last: RequestOutput | undefined;
      for await (const out of solo.stream('The river discovered a letter written in 1894', params)) {
        for (const o of out.outputs) {
          text[o.index] += o.text;
          ids[o.index]!.push(...o.tokenIds);
          if (o.logprobs) logprobs[o.index]!.push(...o.logprobs);
        }
        last = out;
      }
      expect(last!.finished).toBe(true);
      whole!.outputs.forEach((o) => {
        expect(text[o.index]).toBe(o.text);
        expect(ids[o.index]).toEqual(o.tokenIds);
        expect(last!.outputs[o.index]!.finishReason).toBe(o.finishReason);
        if (o.logprobs) expect(logprobs[o.index]).toEqual(o.logprobs);
      });
      const m = last!.metrics!;
      expect(m.arrivalTime).toBeLessThanOrEqual(m.firstScheduledTime!);
      expect(m.firstScheduledTime!).toBeLessThanOrEqual(m.firstTokenTime!);
      expect(m.firstTokenTime!).toBeLessThanOrEqual(m.lastTokenTime!);
      expect(m.lastTokenTime!).toBeLessThanOrEqual(m.finishedTime!);
    }
  });

  it('aborting (signal or leaving the loop) frees the slot at once', async () => {
    const controller = new AbortController();
    const params = new SamplingParams({ temperature: 0, maxTokens: 200, ignoreEos: true });
    let seen = 0;
    for await (const out of solo.stream('Today is', params, { signal: controller.signal })) {
      seen++;
      if (seen === 1) {
        expect((await solo.stats()).slotsInUse).toBe(1);
        controller.abort();
      }
      if (out.finished) expect(out.outputs[0]!.finishReason).toBe('abort');
    }
    expect((await solo.stats()).slotsInUse).toBe(0);
    for await (const _ of solo.stream('Today is', params)) break;
    expect((await solo.stats()).slotsInUse).toBe(0);
  });
});

describe('the KV cache', () => {
  it('is never copied: decode steps feed the same buffer views until the cache is re-laid, and only the step\'s new entries come back', async () => {
    const llm = await LLM.create({ model: modelDir, threads: 2, maxNumSeqs: 2, maxModelLen: 128 });
    try {
      const session = (await llm.ready()).session as BackendSessionV1;
      const seen: Array<{ past: { dims: readonly number[] }; batch: number; longest: number; newShape: readonly number[] }> = [];
      const run = session.run.bind(session);
      session.run = async (feeds) => {
        const out = await run(feeds);
        const ids = feeds[GRAPH_IO.inputIds] as { shape: number[] };
        const seqlens = (feeds[GRAPH_IO.seqlensK] as { data: Int32Array }).data;
        if (ids.shape[1] === 1) {
          seen.push({ past: feeds[GRAPH_IO.pastKey(0)] as { dims: number[] }, batch: ids.shape[0]!, longest: Math.max(...seqlens) + 1, newShape: session.toHost(out[GRAPH_IO.newKey(0)]!).shape });
        }
        return out;
      };
      // 30 + 40 positions: the view grows from 32 positions per head to 64 and 96 (POSITION_STEP), no further.
      await llm.generate([idsPrompt(9, 1), idsPrompt(30, 2)], new SamplingParams({ temperature: 0, maxTokens: 40, ignoreEos: true }));
      const twoRow = seen.filter((s) => s.batch === 2);
      expect(twoRow.length).toBeGreaterThan(30);
      const layouts = new Map<number, unknown>();
      for (const s of twoRow) {
        const positions = s.past.dims[2]!;
        expect(positions).toBeGreaterThanOrEqual(s.longest); // the view holds every row's positions…
        expect(positions).toBeLessThan(s.longest + 32); // …and not the whole of maxModelLen
        if (!layouts.has(positions)) layouts.set(positions, s.past);
        expect(s.past).toBe(layouts.get(positions)); // one object per layout: nothing is copied per step
        expect(s.newShape).toEqual([2, 2, 1, 32]); // [batch, kv heads, one position, head_dim]: not the cache
      }
      expect([...layouts.keys()]).toEqual([32, 64, 96]);
    } finally {
      await llm.close();
    }
  });
});

describe('bad input', () => {
  it('each bad request is a clear error, and the engine keeps serving the others', async () => {
    const llm = await LLM.create({ model: modelDir, threads: 2, maxNumSeqs: 2, maxModelLen: 64 });
    try {
      const good = llm.generate(['I am'], new SamplingParams({ temperature: 0, maxTokens: 20, ignoreEos: true }));
      await expect(llm.generate([idsPrompt(64, 1)], new SamplingParams({ maxTokens: 1 }))).rejects.toThrow(/prompt has 64 tokens, but maxModelLen 64/);
      await expect(llm.generate([idsPrompt(50, 1)], new SamplingParams({ maxTokens: 20 }))).rejects.toThrow(/50 tokens plus maxTokens 20 exceed maxModelLen 64.*at most 14/);
      await expect(llm.generate(['I am'], new SamplingParams({ temperature: 1, n: 3 }))).rejects.toThrow(/n = 3 completions need 3 KV-cache slots, but the engine has maxNumSeqs 2/);
      await expect(llm.generate([{ promptTokenIds: [1, 999_999] }], new SamplingParams())).rejects.toThrow(/token id 999999 is outside the vocabulary/);
      const [out] = await good;
      expect(out!.outputs[0]!.tokenIds).toHaveLength(20);
    } finally {
      await llm.close();
    }
  });

  it('a KV budget that fits no sequence, or a maxModelLen it cannot hold, fails at load naming the numbers', async () => {
    await expect(LLM.create({ model: modelDir, kvCacheBytes: 1024 })).rejects.toThrow(/maxNumSeqs 8 × maxModelLen \d+ positions needs .* more than kvCacheBytes/);
    await expect(LLM.create({ model: modelDir, maxModelLen: 40960, maxNumSeqs: 64, kvCacheBytes: 2 ** 30 })).rejects.toThrow(/lower maxModelLen or maxNumSeqs, or raise kvCacheBytes/);
    await expect(LLM.create({ model: modelDir, maxModelLen: 10 ** 6 })).rejects.toThrow(/exceeds the model's max_position_embeddings/);
  });
});

describe('the waiting queue', () => {
  it('past maxQueue a request fails at once with EngineBusyError, and the queued ones still finish', async () => {
    const llm = await LLM.create({ model: modelDir, threads: 2, maxNumSeqs: 1, maxModelLen: 64, maxQueue: 1 });
    try {
      const params = new SamplingParams({ temperature: 0, maxTokens: 6, ignoreEos: true });
      const running = llm.generate([idsPrompt(4, 1)], params);
      await new Promise((resolve) => setTimeout(resolve, 0)); // the first is admitted at the next step
      const queued = llm.generate([idsPrompt(4, 2)], params);
      const third = llm.generate([idsPrompt(4, 3)], params);
      const results = await Promise.allSettled([running, queued, third]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
      const reason = (results[2] as PromiseRejectedResult).reason as Error;
      expect(reason).toBeInstanceOf(EngineBusyError);
      expect(reason.message).toMatch(/1 requests are already waiting \(maxQueue 1\)/);
      for (const r of results.slice(0, 2)) expect((r as PromiseFulfilledResult<RequestOutput[]>).value[0]!.outputs[0]!.tokenIds).toHaveLength(6);
    } finally {
      await llm.close();
    }
  });
});

describe('close', () => {
  it('aborts what is running, ends its streams, and resolves', async () => {
    const llm = await LLM.create({ model: modelDir, threads: 2, maxNumSeqs: 2, maxModelLen: 256 });
    const outs: RequestOutput[] = [];
    let streaming!: () => void;
    const twoOutputs = new Promise<void>((resolve) => (streaming = resolve));
    const consumer = (async () => {
      for await (const out of llm.stream('Today is', new SamplingParams({ temperature: 0, maxTokens: 200, ignoreEos: true }))) {
        outs.push(out);
        if (outs.length === 2) streaming();
      }
    })();
    await twoOutputs;
    await llm.close();
    await consumer;
    expect(outs.at(-1)!.finished).toBe(true);
    expect(outs.at(-1)!.outputs[0]!.finishReason).toBe('abort');
  });
});

describe('a float16 KV cache', () => {
  it('gives the float32 cache\'s greedy tokens and log-probabilities within 1e-2', async () => {
    const half = await LLM.create({ model: modelDir, threads: 2, maxNumSeqs: 2, maxModelLen: 256, kvCacheDtype: 'float16' });
    try {
      const params = new SamplingParams({ temperature: 0, maxTokens: 24, ignoreEos: true, logprobs: 2 });
      const prompts = [idsPrompt(40, 3), 'The river discovered a letter written in 1894'];
      const [a, b] = [await solo.generate(prompts, params), await half.generate(prompts, params)];
      for (const [i, out] of a.entries()) {
        const ref = out.outputs[0]!;
        const got = b[i]!.outputs[0]!;
        const steps = comparableSteps(ref);
        expect(got.tokenIds.slice(0, steps)).toEqual(ref.tokenIds.slice(0, steps));
        for (let s = 0; s < steps; s++) {
          const id = ref.tokenIds[s]!;
          expect(Math.abs(got.logprobs![s]![id]!.logprob - ref.logprobs![s]![id]!.logprob)).toBeLessThan(1e-2);
        }
      }
    } finally {
      await half.close();
    }
  });
});
