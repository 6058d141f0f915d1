/**
 * RemoteLoop against a scripted RemoteEngineV1: the LLM's own stop checks end a completion the server would have
 * continued (and close its stream), a finish only the server saw is taken, n completions interleave, a stream that
 * ends early or fails is an error, abort gives the final 'abort' output and cancels the request, close aborts all.
 */
import { describe, expect, it } from 'vitest';
import type { RemoteDeltaV1, RemoteEngineV1, RemoteRequestV1 } from '../backend/v1/remote-engine-v1.js';
import { ConfigError } from '../errors.js';
import { Rng } from '../sampling/index.js';
import type { RequestOutput } from './outputs.js';
import { RemoteLoop } from './remote-loop.js';
import { SamplingParams } from './sampling-params.js';

/** A server that sends `script` (or waits on the signal forever after it), recording what it was asked and whether its stream was closed. */
function fakeEngine(script: (req: RemoteRequestV1) => Array<RemoteDeltaV1 | Error>, hang = false) {
  const seen = { requests: [] as RemoteRequestV1[], closedEarly: 0 };
  const engine: RemoteEngineV1 = {
    specificationVersion: 'v1',
    url: 'http://fake',
    servedModelName: 'fake',
    async *generate(req) {
      seen.requests.push(req);
      let done = false;
      try {
        for (const d of script(req)) {
          await new Promise((r) => setImmediate(r));
          if (d instanceof Error) throw d;
          yield d;
        }
        if (hang) await new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
        done = true;
      } finally {
        if (!done) seen.closedEarly++;
      }
    },
    async close() {},
  };
  return { engine, seen };
}

const init = (params: SamplingParams, outputKind: 'delta' | 'final' = 'final') => ({ prompt: null, promptTokenIds: [1, 2, 3], params, rng: new Rng(0), outputKind, arrivalTime: 1 });
const loopOf = (engine: RemoteEngineV1, maxModelLen?: number) => new RemoteLoop(engine, { eosTokenIds: [99], vocabSize: 100, maxModelLen });

async function all(it: AsyncIterableIterator<RequestOutput>): Promise<RequestOutput[]> {
  const out: RequestOutput[] = [];
  for await (const o of it) out.push(o);
  return out;
}

describe('RemoteLoop', () => {
  it('ends a completion on its own stop checks (EOS, stop token, maxTokens) and closes the stream', async () => {
    const { engine, seen } = fakeEngine(() => [{ index: 0, tokenIds: [5, 6] }, { index: 0, tokenIds: [7, 99] }, { index: 0, tokenIds: [8] }], true);
    const loop = loopOf(engine);
    const [out] = await all(loop.add('a', init(new SamplingParams({ maxTokens: 10 }))));
    expect(out!.outputs[0]).toMatchObject({ tokenIds: [5, 6, 7, 99], finishReason: 'stop', stopReason: null });
    const [stopped] = await all(loop.add('b', init(new SamplingParams({ maxTokens: 10, stopTokenIds: [6] }))));
    expect(stopped!.outputs[0]).toMatchObject({ tokenIds: [5, 6], finishReason: 'stop', stopReason: 6 });
    const [length] = await all(loop.add('c', init(new SamplingParams({ maxTokens: 3 }))));
    expect(length!.outputs[0]).toMatchObject({ tokenIds: [5, 6, 7], finishReason: 'length' });
    expect(seen.closedEarly).toBe(3);
    expect(seen.requests[0]!.promptTokenIds).toEqual([1, 2, 3]);
  });

  it("takes the server's finish when it saw one the LLM did not (its context limit), and interleaves n completions", async () => {
    const { engine } = fakeEngine(() => [
      { index: 1, tokenIds: [10] },
      { index: 0, tokenIds: [20], logprobs: [{ 20: { logprob: -0.5, rank: 1 } }] },
      { index: 1, tokenIds: [11], finishReason: 'length' },
      { index: 0, tokenIds: [21], logprobs: [{ 21: { logprob: -1.5, rank: 2 }, 3: { logprob: -1, rank: 1 } }], finishReason: 'stop', stopReason: 'xyz' },
    ]);
    const deltas = await all(loopOf(engine).add('n', init(new SamplingParams({ n: 2, temperature: 1, maxTokens: 8, logprobs: 1 }), 'delta')));
    expect(deltas.at(-1)!.finished).toBe(true);
    expect(deltas.slice(0, -1).every((d) => !d.finished)).toBe(true);
    const cat = (i: number) => deltas.flatMap((d) => d.outputs[i]!.tokenIds);
    expect([cat(0), cat(1)]).toEqual([[20, 21], [10, 11]]);
    expect(deltas.at(-1)!.outputs.map((o) => [o.finishReason, o.stopReason])).toEqual([['stop', 'xyz'], ['length', null]]);
    expect(deltas.at(-1)!.outputs[0]!.cumulativeLogprob).toBe(-2);
    expect(deltas.at(-1)!.metrics).toMatchObject({ arrivalTime: 1, numGenerationTokens: 4 });
  });

  it('a stream that ends before the completions finish, or fails, is an error; prompts are checked before sending', async () => {
    await expect(all(loopOf(fakeEngine(() => [{ index: 0, tokenIds: [5] }]).engine).add('x', init(new SamplingParams({ maxTokens: 4 })))))
      .rejects.toThrow(/ended request x's stream before completion 0 finished/);
    await expect(all(loopOf(fakeEngine(() => [{ index: 0, tokenIds: [5] }, new ConfigError('http://fake: no')]).engine).add('y', init(new SamplingParams()))))
      .rejects.toThrow(ConfigError);
    const loop = loopOf(fakeEngine(() => []).engine, 10);
    expect(() => loop.add('e', { ...init(new SamplingParams()), promptTokenIds: [] })).toThrow(/the prompt is empty/);
    expect(() => loop.add('v', { ...init(new SamplingParams()), promptTokenIds: [100] })).toThrow(/outside the vocabulary \[0, 100\)/);
    expect(() => loop.add('l', init(new SamplingParams({ maxTokens: 8 })))).toThrow(/exceed the server's max_model_len 10/);
  });

  it('abort: the final output says abort, the request is cancelled on the server; close aborts what runs', async () => {
    const { engine, seen } = fakeEngine(() => [{ index: 0, tokenIds: [5] }], true);
    const loop = loopOf(engine);
    const it = loop.add('s', init(new SamplingParams({ maxTokens: 50 }), 'delta'));
    const first = await it.next();
    expect(first.value.outputs[0].tokenIds).toEqual([5]);
    expect(loop.stats().running).toBe(1);
    loop.abort('s');
    const rest = await all(it);
    expect(rest.at(-1)!.outputs[0]!.finishReason).toBe('abort');
    expect(seen.requests[0]!.signal.aborted).toBe(true);
    const other = loop.add('t', init(new SamplingParams({ maxTokens: 50 })));
    await new Promise((r) => setTimeout(r, 10));
    await loop.close();
    const [closed] = await all(other);
    expect(closed!.outputs[0]!.finishReason).toBe('abort');
    expect(loop.stats().running).toBe(0);
  });
});
