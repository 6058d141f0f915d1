/**
 * One qllm measurement in its own process (so peak RSS is this model's), for `pnpm bench`:
 * `node --conditions=source --import tsx bench/measure-qllm.ts --model DIR [--graph-cache DIR|off]
 * [--lm-head float|int8] [--threads T] [--concurrency 1,4,16] [--load-only]`. Prints one JSON line (workload.ts's
 * Measurement; with --load-only, the load alone):
 *   - load: `new LLM(...)` to `ready()` (16 sequences of 256 positions), with the graph cache given — warm when the
 *     cache already holds this graph (`graphCached`);
 *   - prefill tok/s and time to first token: a 128-token prompt, one token generated, median of 3 prompts;
 *   - decode tok/s: N sequences at once (1, 4, 16), each a 128-token prompt then 65 tokens, greedy, streamed; the
 *     aggregate rate of the tokens after every sequence has its first one (workload.ts, aggregateDecode);
 *   - peak RSS of the process.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { LLM, SamplingParams, type LmHeadOption } from 'qllm';
import {
  aggregateDecode, DECODE_SALT, DECODE_TOKENS, MAX_MODEL_LEN, MAX_SEQUENCES, median, peakRssGiB, PREFILL_REPEATS,
  PREFILL_SALT, promptIds, PROMPT_TOKENS, tokenArrivals, WARMUP_SALT, type Measurement,
} from './workload.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    'graph-cache': { type: 'string' },
    'lm-head': { type: 'string', default: 'float' },
    concurrency: { type: 'string', default: '1,4,16' },
    'load-only': { type: 'boolean', default: false },
  },
});
const threads = Number(values.threads);
const cache = values['graph-cache'];
const concurrency = values.concurrency!.split(',').map(Number);
const greedy = (maxTokens: number) => new SamplingParams({ temperature: 0, maxTokens, ignoreEos: true });

const t0 = performance.now();
const llm = new LLM({
  model: values.model!,
  threads,
  maxNumSeqs: MAX_SEQUENCES,
  maxModelLen: MAX_MODEL_LEN,
  lmHead: values['lm-head'] as LmHeadOption,
  ...(cache !== undefined && { graphCache: cache === 'off' ? false : cache }),
});
const loaded = await llm.ready();
const loadS = (performance.now() - t0) / 1000;
const graphCached = 'graphCached' in loaded ? loaded.graphCached : false;
if (values['load-only']) {
  // A cold load (an empty graph cache) is measured on its own, in its own process.
  const peak = peakRssGiB();
  await llm.close();
  console.log(JSON.stringify({ engine: 'qllm', model: values.model!, loadS, graphCached, peakRssGiB: peak, threads }));
  process.exit(0);
}

await llm.generate([{ promptTokenIds: promptIds(8, WARMUP_SALT) }], greedy(2)); // warm-up

/** Token arrival times (ms) of one streamed request. */
const arrivals = (ids: number[], maxTokens: number) => tokenArrivals(llm.stream({ promptTokenIds: ids }, greedy(maxTokens)));

const prefillMs: number[] = [];
const ttftMs: number[] = [];
for (let rep = 0; rep < PREFILL_REPEATS; rep++) {
  const t = performance.now();
  const [first] = await arrivals(promptIds(PROMPT_TOKENS, PREFILL_SALT + rep), 1);
  ttftMs.push(first! - t);
  prefillMs.push(performance.now() - t);
}

const decode: Record<string, number> = {};
// A concurrency level that fails is reported (decodeErrors) rather than losing the whole measurement.
const decodeErrors: Record<string, string> = {};
for (const n of concurrency) {
  try {
    const runs = await Promise.all(Array.from({ length: n }, (_, i) => arrivals(promptIds(PROMPT_TOKENS, DECODE_SALT + i), DECODE_TOKENS + 1)));
    for (const r of runs) if (r.length !== DECODE_TOKENS + 1) throw new Error(`expected ${DECODE_TOKENS + 1} tokens, got ${r.length}`);
    decode[n] = aggregateDecode(runs).tokPerS;
  } catch (e) {
    decodeErrors[n] = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
    console.error(`measure-qllm: ${n} sequences failed: ${decodeErrors[n]}`);
    break; // the engine may not be usable after a failed step
  }
}
await llm.close().catch(() => undefined);

const result: Measurement = {
  engine: 'qllm',
  model: values.model!,
  loadS,
  graphCached,
  prefillTokPerS: (PROMPT_TOKENS / median(prefillMs)) * 1000,
  ttftMs: median(ttftMs),
  decode,
  ...(Object.keys(decodeErrors).length > 0 && { decodeErrors }),
  peakRssGiB: peakRssGiB(),
  threads,
};
console.log(JSON.stringify(result));
