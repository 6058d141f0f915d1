/** LLM option validation: what is checked before (or without) loading a model. Generation itself is tested in packages/qllm. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { LLM, type LLMOptions } from './llm.js';
import { SamplingParams } from './sampling-params.js';

// No such folder: loading fails in the background, so anything reported instead was checked first.
const model = '/nonexistent/qllm-model';

describe('LLM options', () => {
  it.each([500, 257, 0, -3, 2.5, Number.NaN, Infinity, '4' as unknown as number])('rejects threads %s, naming the option', (threads) => {
    expect(() => new LLM({ model, threads })).toThrow(ConfigError);
    expect(() => new LLM({ model, threads })).toThrow(`LLM.threads must be an integer in [1, 256], got ${String(threads)}`);
  });

  it('accepts threads 1 to 256', () => {
    expect(() => new LLM({ model, threads: 1 })).not.toThrow();
    expect(() => new LLM({ model, threads: 256 })).not.toThrow();
  });

  it.each([-1, 1.5, Number.NaN, '20' as unknown as number])('rejects maxLogprobs %s, naming the option', (maxLogprobs) => {
    expect(() => new LLM({ model, maxLogprobs } as LLMOptions)).toThrow(`LLM.maxLogprobs must be an integer >= 0, got ${String(maxLogprobs)}`);
  });
});

describe('LLM.generate and maxLogprobs (vLLM max_logprobs)', () => {
  it('rejects a request for more logprobs than maxLogprobs (default 20) before any work, naming both numbers', async () => {
    const llm = new LLM({ model });
    const request = llm.generate('x', new SamplingParams({ logprobs: 1_000_000 }));
    await expect(request).rejects.toThrow(ConfigError);
    await expect(request).rejects.toThrow("generate: SamplingParams.logprobs 1000000 is more than this LLM's maxLogprobs 20");
    await expect(llm.generate(['x', 'y'], [new SamplingParams(), new SamplingParams({ logprobs: 21 })])).rejects.toThrow(
      "SamplingParams.logprobs 21 (for prompt 1) is more than this LLM's maxLogprobs 20",
    );
  });

  it('allows up to maxLogprobs (then the missing model is what fails)', async () => {
    await expect(new LLM({ model }).generate('x', new SamplingParams({ logprobs: 20 }))).rejects.toThrow(/model folder not found/);
    await expect(new LLM({ model, maxLogprobs: 50 }).generate('x', new SamplingParams({ logprobs: 50 }))).rejects.toThrow(/model folder not found/);
    await expect(new LLM({ model, maxLogprobs: 0 }).generate('x', new SamplingParams({ logprobs: 1 }))).rejects.toThrow('maxLogprobs 0');
  });
});
