/**
 * `pnpm bench [--layers N] [--threads T] [--decode N] [--prefill N] [--dir DIR]`: load time, prefill and decode
 * speed of a Qwen3-0.6B-shaped random bf16 checkpoint (hidden 1024, 28 layers, 16/8 heads, head_dim 128,
 * intermediate 3072, tied, vocab 151936) made with @qllm/testing's generator. Prints a markdown table row.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { KvCache, LLM, ModelRunner } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';

const { values } = parseArgs({
  options: {
    layers: { type: 'string', default: '28' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    decode: { type: 'string', default: '64' },
    prefill: { type: 'string', default: '128' },
    dir: { type: 'string' },
  },
});
const layers = Number(values.layers);
const dir = values.dir ?? path.join(os.tmpdir(), 'qllm-bench', `qwen3-0.6b-shape-l${layers}`);
if (!fs.existsSync(path.join(dir, 'config.json'))) {
  const t = performance.now();
  await makeTinyQwen3(dir, {
    hiddenSize: 1024, numLayers: layers, numHeads: 16, numKvHeads: 8, headDim: 128, intermediateSize: 3072,
    vocabSize: 151936, tieWordEmbeddings: true, seed: 1,
  });
  console.error(`generated ${dir} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

const llm = new LLM({ model: dir, threads: Number(values.threads) });
const loaded = await llm.ready();
const runner = new ModelRunner(loaded.session, loaded.config);
const nPrefill = Number(values.prefill);
const nDecode = Number(values.decode);
const prompt = Array.from({ length: nPrefill }, (_, i) => (i * 7919) % 150000);

// warm-up, then measure
let cache = new KvCache();
await runner.forward(cache, prompt.slice(0, 8), [7]);
runner.free(cache);

cache = new KvCache();
let t = performance.now();
await runner.forward(cache, prompt, [nPrefill - 1]);
const prefillMs = performance.now() - t;
runner.free(cache);

cache = new KvCache();
await runner.forward(cache, prompt.slice(0, 8), [7]);
t = performance.now();
for (let i = 0; i < nDecode; i++) await runner.forward(cache, [(i * 31) % 150000], [0]);
const decodeMs = performance.now() - t;
runner.free(cache);
await llm.close();

const row = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${os.cpus()[0]?.model ?? 'cpu'} ×${os.availableParallelism()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
  model: `Qwen3-0.6B shape, ${layers} layers, bf16 → float32`,
  threads: Number(values.threads),
  loadS: +(loaded.loadMs / 1000).toFixed(2),
  prefillTokPerS: +((nPrefill / prefillMs) * 1000).toFixed(1),
  decodeTokPerS: +((nDecode / decodeMs) * 1000).toFixed(2),
  peakRssGiB: +(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2),
};
console.log(JSON.stringify(row));
console.log(`| ${row.date} | ${row.machine} | ${row.model} | ${row.threads} | ${row.loadS} s | ${row.prefillTokPerS} (${nPrefill} tok) | ${row.decodeTokPerS} | ${row.peakRssGiB} GiB |`);
