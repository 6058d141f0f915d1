/**
 * One load in its own process (so peak RSS is this load's): `node --conditions=source --import tsx
 * bench/measure-load.ts --model DIR [--graph-cache DIR|off] [--lm-head float|int8]`. Prints JSON: load seconds,
 * whether the graph came from the cache, peak RSS during the load, RSS once loaded, and the first greedy tokens of
 * a fixed prompt (to check that a cached graph gives the same model).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LLM, SamplingParams, type LmHeadOption } from 'qllm';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    'graph-cache': { type: 'string' },
    'max-model-len': { type: 'string', default: '256' },
    'lm-head': { type: 'string', default: 'float' },
  },
});
const status = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 2 ** 20;
const cache = values['graph-cache'];
const t0 = performance.now();
const llm = new LLM({
  model: values.model!,
  maxNumSeqs: 1,
  maxModelLen: Number(values['max-model-len']),
  kvCacheBytes: 2 ** 28,
  lmHead: values['lm-head'] as LmHeadOption,
  ...(cache === undefined ? {} : { graphCache: cache === 'off' ? false : cache }),
});
const loaded = await llm.ready();
const loadS = (performance.now() - t0) / 1000;
const peakLoadGiB = status('VmHWM');
const rssGiB = status('VmRSS');
const [out] = await llm.generate([{ promptTokenIds: [9707, 11, 1879, 0, 358, 1079] }], new SamplingParams({ temperature: 0, maxTokens: 8, ignoreEos: true }));
console.log(JSON.stringify({
  model: values.model,
  loadS: +loadS.toFixed(2),
  graphCached: loaded.graphCached,
  peakLoadGiB: +peakLoadGiB.toFixed(2),
  rssGiB: +rssGiB.toFixed(2),
  tokens: out!.outputs[0]!.tokenIds,
}));
await llm.close();
