/** One serving measurement in its own process (so peak RSS is this model's): load, prefill, decode. Prints JSON. */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { KvCache, LLM, ModelRunner } from 'qllm';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    decode: { type: 'string', default: '64' },
    prefill: { type: 'string', default: '128' },
  },
});
const llm = new LLM({ model: values.model!, threads: Number(values.threads) });
const loaded = await llm.ready();
const runner = new ModelRunner(loaded.session, loaded.config);
const nPrefill = Number(values.prefill);
const nDecode = Number(values.decode);
const prompt = Array.from({ length: nPrefill }, (_, i) => (i * 7919) % 150000);

const warm = new KvCache();
await runner.forward(warm, prompt.slice(0, 8), [7]);
runner.free(warm);

let best = Infinity;
for (let rep = 0; rep < 3; rep++) {
  const cache = new KvCache();
  const t = performance.now();
  await runner.forward(cache, prompt, [nPrefill - 1]);
  best = Math.min(best, performance.now() - t);
  runner.free(cache);
}
const cache = new KvCache();
await runner.forward(cache, prompt.slice(0, 8), [7]);
const t = performance.now();
for (let i = 0; i < nDecode; i++) await runner.forward(cache, [(i * 31) % 150000], [0]);
const decodeMs = performance.now() - t;
runner.free(cache);
await llm.close();
console.log(JSON.stringify({
  quantization: loaded.quantization?.name ?? 'none',
  loadS: +(loaded.loadMs / 1000).toFixed(2),
  prefillTokPerS: +((nPrefill / best) * 1000).toFixed(1),
  decodeTokPerS: +((nDecode / decodeMs) * 1000).toFixed(2),
  peakRssGiB: +(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2),
}));
