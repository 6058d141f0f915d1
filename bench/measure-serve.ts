/**
 * One serving measurement in its own process (so peak RSS is this model's), through the batching engine. Prints JSON:
 * load time; prefill tok/s (128-token prompt, best of 3) and time to first token; aggregate decode tok/s with 1, 4
 * and 16 sequences decoding together (64 tokens each after an 8-token prompt); then, in a one-slot engine, the decode
 * step time at context 32 and at context 2048.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { LLM, SamplingParams, type KvDtype, type LmHeadOption, type RequestOutput } from 'qllm';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    decode: { type: 'string', default: '64' },
    prefill: { type: 'string', default: '128' },
    'kv-dtype': { type: 'string', default: 'float32' },
    'lm-head': { type: 'string', default: 'float' },
  },
});
const threads = Number(values.threads);
const kvCacheDtype = values['kv-dtype'] as KvDtype;
const lmHead = values['lm-head'] as LmHeadOption;
const nPrefill = Number(values.prefill);
const nDecode = Number(values.decode);
const ids = (n: number, salt: number) => ({ promptTokenIds: Array.from({ length: n }, (_, i) => 100 + ((i * 7919 + salt * 104729) % 150000)) });
const greedy = (maxTokens: number) => new SamplingParams({ temperature: 0, maxTokens, ignoreEos: true });

// Phase 1: 16 slots of 256 positions.
const t0 = performance.now();
const llm = new LLM({ model: values.model!, threads, maxNumSeqs: 16, maxModelLen: 256, kvCacheDtype, lmHead });
const loaded = await llm.ready();
const loadS = (performance.now() - t0) / 1000;
await llm.generate([ids(8, 0)], greedy(2)); // warm-up

let bestPrefill = Infinity;
let ttft = Infinity;
for (let rep = 0; rep < 3; rep++) {
  const t = performance.now();
  for await (const _ of llm.stream(ids(nPrefill, rep + 1), greedy(1))) {
    ttft = Math.min(ttft, performance.now() - t);
  }
  bestPrefill = Math.min(bestPrefill, performance.now() - t);
}

const decodeTokPerS: Record<number, number> = {};
for (const c of [1, 4, 16]) {
  const outs: RequestOutput[] = await llm.generate(Array.from({ length: c }, (_, i) => ids(8, 100 + i)), greedy(nDecode));
  const firstToken = Math.max(...outs.map((o) => o.metrics!.firstTokenTime!));
  const finished = Math.max(...outs.map((o) => o.metrics!.finishedTime!));
  const tokens = outs.reduce((a, o) => a + o.outputs[0]!.tokenIds.length - 1, 0);
  decodeTokPerS[c] = tokens / (finished - firstToken);
}
const peakRssGiB = process.resourceUsage().maxRSS / 2 ** 20;
await llm.close();

// Phase 2: one slot of 2112 positions: the decode step at short and long context.
const long = new LLM({ model: values.model!, threads, maxNumSeqs: 1, maxModelLen: 2112, kvCacheDtype, lmHead });
await long.ready();
const stepMs: Record<number, number> = {};
for (const context of [32, 2048]) {
  const [out] = await long.generate([ids(context, 7)], greedy(33));
  stepMs[context] = ((out!.metrics!.finishedTime! - out!.metrics!.firstTokenTime!) * 1000) / 32;
}
await long.close();

console.log(JSON.stringify({
  quantization: loaded.quantization?.name ?? 'none',
  lmHead,
  kvCacheDtype,
  loadS: +loadS.toFixed(2),
  prefillTokPerS: +((nPrefill / bestPrefill) * 1000).toFixed(1),
  ttftMs: +ttft.toFixed(0),
  decodeTokPerS: +decodeTokPerS[1]!.toFixed(2),
  decode4TokPerS: +decodeTokPerS[4]!.toFixed(2),
  decode16TokPerS: +decodeTokPerS[16]!.toFixed(2),
  stepMsCtx32: +stepMs[32]!.toFixed(1),
  stepMsCtx2048: +stepMs[2048]!.toFixed(1),
  peakRssGiB: +peakRssGiB.toFixed(2),
}));
