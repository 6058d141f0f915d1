/**
 * One sequence's decode rate over a long window: `node --conditions=source --import tsx bench/decode-one.ts DIR`.
 * Loads DIR (the weight-only int8 head, 16 slots of 512 positions, 2 threads), warms up, then streams 201 greedy
 * tokens after a 128-token prompt and prints the tokens/s between the first token and the last (200 decode steps:
 * less noise than the bench's 64). Used to compare two builds, one process each, alternating.
 */
import { LLM, SamplingParams } from 'qllm';

const llm = new LLM({ model: process.argv[2]!, maxNumSeqs: 16, maxModelLen: 512, lmHead: 'int8', threads: 2 });
await llm.ready();
const ids = Array.from({ length: 128 }, (_, i) => 100 + ((i * 7919) % 150000));
await llm.generate([{ promptTokenIds: ids.slice(0, 8) }], new SamplingParams({ temperature: 0, maxTokens: 4, ignoreEos: true }));
const times: number[] = [];
for await (const _ of llm.stream({ promptTokenIds: ids }, new SamplingParams({ temperature: 0, maxTokens: 201, ignoreEos: true }))) {
  times.push(performance.now());
}
await llm.close();
console.log((((times.length - 1) / (times.at(-1)! - times[0]!)) * 1000).toFixed(2));
