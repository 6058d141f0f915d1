import { describe, expect, it } from 'vitest';
import { toVllmJson, type RequestOutput } from './outputs.js';

const output: RequestOutput = {
  requestId: '0',
  prompt: 'Hello',
  promptTokenIds: [9707],
  outputs: [
    {
      index: 0,
      text: ' world',
      tokenIds: [1879, 151645],
      cumulativeLogprob: -1.5,
      logprobs: [
        { 1879: { logprob: -0.25, rank: 1, decodedToken: ' world' }, 11: { logprob: -2, rank: 2 } },
        { 151645: { logprob: -1.25, rank: 3 } },
      ],
      finishReason: 'stop',
      stopReason: null,
    },
    { index: 1, text: ' there', tokenIds: [1052], cumulativeLogprob: null, logprobs: null, finishReason: 'length', stopReason: null },
  ],
  finished: true,
  metrics: { arrivalTime: 1, lastTokenTime: 2, numGenerationTokens: 3 },
};

describe('toVllmJson', () => {
  it("produces vLLM's snake_case RequestOutput JSON with plain-number logprobs keyed by token id", () => {
    expect(JSON.parse(JSON.stringify(toVllmJson(output)))).toEqual({
      prompt: 'Hello',
      prompt_token_ids: [9707],
      outputs: [
        {
          index: 0,
          text: ' world',
          token_ids: [1879, 151645],
          cumulative_logprob: -1.5,
          logprobs: [{ '1879': -0.25, '11': -2 }, { '151645': -1.25 }],
          finish_reason: 'stop',
          stop_reason: null,
        },
        { index: 1, text: ' there', token_ids: [1052], cumulative_logprob: null, logprobs: null, finish_reason: 'length', stop_reason: null },
      ],
      metrics: { arrival_time: 1, first_scheduled_time: null, first_token_time: null, last_token_time: 2, finished_time: null },
    });
  });

  it('has exactly the contract keys, keeps stop reasons and a null prompt, and copies arrays', () => {
    const json = toVllmJson({
      ...output,
      prompt: null,
      outputs: [{ ...output.outputs[1]!, finishReason: 'stop', stopReason: '###' }, { ...output.outputs[1]!, index: 1, stopReason: 151643 }],
    });
    expect(Object.keys(json)).toEqual(['prompt', 'prompt_token_ids', 'outputs', 'metrics']);
    expect(Object.keys(toVllmJson({ ...output, metrics: undefined }))).toEqual(['prompt', 'prompt_token_ids', 'outputs']);
    expect(Object.keys(json.outputs[0]!)).toEqual(['index', 'text', 'token_ids', 'cumulative_logprob', 'logprobs', 'finish_reason', 'stop_reason']);
    expect(json.prompt).toBeNull();
    expect(json.outputs.map((o) => o.stop_reason)).toEqual(['###', 151643]);
    expect(json.prompt_token_ids).not.toBe(output.promptTokenIds);
  });
});
