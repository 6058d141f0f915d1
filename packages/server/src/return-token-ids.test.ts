/**
 * vLLM's `return_token_ids` on /v1/completions (what a client that detokenizes itself needs, e.g. qllm's remote
 * backends): each choice carries its prompt's token ids and its output's; streamed, the prompt's come in a choice's
 * first chunk and each chunk carries the new output ids. Without the field, responses are unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SamplingParams, type LLM } from 'qllm';
import { MODEL, newLLM, post, startServer, tinyModel, type Harness } from './__fixtures__/harness.js';

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

/** The `data:` payloads of an SSE response body. */
function events(text: string): any[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]').map((e) => JSON.parse(e.slice(6)));
}

describe('return_token_ids', () => {
  it('non-streamed: prompt_token_ids and token_ids per choice, equal to LLM.generate; absent unless asked', async () => {
    const [ref] = await llm.generate('The river', new SamplingParams({ temperature: 0, maxTokens: 6 }));
    const res = await post(`${h.url}/v1/completions`, { model: MODEL, prompt: 'The river', max_tokens: 6, temperature: 0, return_token_ids: true });
    expect(res.status).toBe(200);
    expect(res.json.choices[0].prompt_token_ids).toEqual(ref!.promptTokenIds);
    expect(res.json.choices[0].token_ids).toEqual(ref!.outputs[0]!.tokenIds);
    const plain = await post(`${h.url}/v1/completions`, { model: MODEL, prompt: 'The river', max_tokens: 6, temperature: 0 });
    expect(plain.json.choices[0]).not.toHaveProperty('token_ids');
    expect(plain.json.choices[0]).not.toHaveProperty('prompt_token_ids');
  });

  it('streamed, n = 2 and two token-id prompts: prompt ids once per choice (first chunk), output ids concatenating to the whole', async () => {
    const prompts = [[40, 1079], [785, 3974, 374]];
    const body = { model: MODEL, prompt: prompts, max_tokens: 5, temperature: 1, seed: 3, n: 2 };
    const whole = await post(`${h.url}/v1/completions`, { ...body, return_token_ids: true });
    const res = await post(`${h.url}/v1/completions`, { ...body, return_token_ids: true, stream: true });
    const chunks = events(res.text);
    const ids: number[][] = [[], [], [], []];
    const promptIds: number[][][] = [[], [], [], []];
    for (const chunk of chunks) {
      for (const c of chunk.choices) {
        ids[c.index]!.push(...c.token_ids);
        if (c.prompt_token_ids) promptIds[c.index]!.push(c.prompt_token_ids);
      }
    }
    expect(promptIds).toEqual([[prompts[0]], [prompts[0]], [prompts[1]], [prompts[1]]]);
    expect(ids).toEqual(whole.json.choices.map((c: { token_ids: number[] }) => c.token_ids));
    expect(ids.every((x) => x.length === 5)).toBe(true);
    const unasked = events((await post(`${h.url}/v1/completions`, { ...body, stream: true })).text);
    expect(unasked.some((chunk) => chunk.choices.some((c: object) => 'token_ids' in c))).toBe(false);
  });

  it('a non-boolean is a 400 naming the field', async () => {
    const res = await post(`${h.url}/v1/completions`, { model: MODEL, prompt: 'x', return_token_ids: 'yes' });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe('return_token_ids');
  });
});
