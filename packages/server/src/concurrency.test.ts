/**
 * 16 concurrent streaming requests through the `openai` client on an engine of 8 slots (so half of them queue, and
 * every decode step batches several): all finish, each with exactly the output it gets alone (greedy).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SamplingParams, type LLM, type PromptInput, type RequestOutput } from 'qllm';
import { MODEL, newLLM, startServer, tinyModel, type Harness } from './__fixtures__/harness.js';

let h: Harness;
let llm: LLM;
let remove: () => Promise<void>;

beforeAll(async () => {
  const model = await tinyModel(13);
  remove = model.remove;
  llm = newLLM(model.dir, { maxNumSeqs: 8, maxModelLen: 256 });
  h = await startServer(llm, { maxQueue: 16 });
});
afterAll(async () => {
  await h?.stop();
  await llm?.close();
  await remove?.();
});

const TEXTS = ['I am', 'Today is', 'The river discovered a letter', 'Llama is', 'Once upon a time', 'Hello'];
/** Prompt i: text for some, token ids of varied lengths for the others. */
const prompt = (i: number): string | number[] =>
  i % 3 === 0 ? TEXTS[(i / 3) % TEXTS.length]! : Array.from({ length: 3 + ((i * 13) % 60) }, (_, j) => 100 + ((j * 7919 + i * 104729) % 150000));
const MAX_TOKENS = (i: number) => 6 + (i % 5) * 3;

/** Steps of the solo run whose choice was decided by more than 1e-3 (batched float sums may flip a closer tie). */
function comparableSteps(out: RequestOutput['outputs'][number]): number {
  const lps = out.logprobs!;
  for (let s = 0; s < lps.length; s++) {
    const top = Object.values(lps[s]!).map((l) => l.logprob).sort((a, b) => b - a);
    if (top.length > 1 && top[0]! - top[1]! < 1e-3) return s + 1;
  }
  return lps.length;
}

it('16 concurrent streams all finish, each exactly as alone', async () => {
  const alone: RequestOutput[] = [];
  for (let i = 0; i < 16; i++) {
    const p = prompt(i);
    const input: PromptInput = typeof p === 'string' ? p : { promptTokenIds: p };
    const [out] = await llm.generate([input], new SamplingParams({ temperature: 0, maxTokens: MAX_TOKENS(i), ignoreEos: true, logprobs: 2 }));
    alone.push(out!);
  }

  let maxRunningSeen = 0;
  const watch = setInterval(() => void llm.stats().then((s) => (maxRunningSeen = Math.max(maxRunningSeen, s.running))), 5);
  const results = await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const stream = await h.client.completions.create({
        model: MODEL, prompt: prompt(i), max_tokens: MAX_TOKENS(i), temperature: 0, stream: true,
        logprobs: 0, ignore_eos: true, return_tokens_as_token_ids: true,
      } as never);
      let text = '';
      const ids: number[] = [];
      let finish: string | null = null;
      let chunks = 0;
      for await (const chunk of stream as unknown as AsyncIterable<{ choices: Array<{ text: string; finish_reason: string | null; logprobs: { tokens: string[] } | null }> }>) {
        chunks++;
        const c = chunk.choices[0]!;
        text += c.text;
        for (const t of c.logprobs?.tokens ?? []) ids.push(Number(t.slice('token_id:'.length)));
        finish = c.finish_reason ?? finish;
      }
      return { text, ids, finish, chunks };
    }),
  );
  clearInterval(watch);

  expect(maxRunningSeen).toBeGreaterThan(1); // they really decoded together
  let fullyCompared = 0;
  results.forEach((r, i) => {
    const ref = alone[i]!.outputs[0]!;
    expect(r.finish).toBe('length');
    expect(r.ids).toHaveLength(MAX_TOKENS(i));
    expect(r.chunks).toBeGreaterThan(1);
    const steps = comparableSteps(ref);
    expect(r.ids.slice(0, steps), `request ${i}`).toEqual(ref.tokenIds.slice(0, steps));
    if (steps === ref.tokenIds.length) {
      expect(r.text, `request ${i}`).toBe(ref.text);
      fullyCompared++;
    }
  });
  expect(fullyCompared).toBeGreaterThanOrEqual(12); // near-ties are rare: most requests are compared whole
});
