/**
 * `pnpm bench [--layers N] [--threads T]`: a Qwen3-0.6B-shaped random bf16 checkpoint (hidden 1024, 28 layers,
 * 16/8 heads, head_dim 128, intermediate 3072, tied, vocab 151936) made with @qllm/testing's generator; then
 *   1. serve it (float32 compute) through the batching engine: load time, prefill tok/s (128 tokens), time to first
 *      token, aggregate decode tok/s with 1, 4 and 16 sequences, the decode step at context 32 and 2048;
 *   2. quantize it with SmoothQuant A8W8: wall time and peak RSS;
 *   3. serve the A8W8 folder the same way, with a float32 and with a float16 KV cache.
 * Each step runs in its own process, so each peak RSS is that step's. Prints a markdown table for BENCHMARKS.md.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeTinyQwen3, QWEN3_0_6B_SHAPE } from '@qllm/testing';

const { values } = parseArgs({ options: { layers: { type: 'string', default: '28' }, threads: { type: 'string', default: String(os.availableParallelism()) } } });
const here = path.dirname(fileURLToPath(import.meta.url));
const layers = Number(values.layers);
const root = path.join(os.tmpdir(), 'qllm-bench');
const floatDir = path.join(root, `qwen3-0.6b-shape-l${layers}`);
const quantDir = `${floatDir}-A8W8`;
if (!fs.existsSync(path.join(floatDir, 'config.json'))) {
  await makeTinyQwen3(floatDir, { ...QWEN3_0_6B_SHAPE, numLayers: layers, seed: 1 });
}
const child = (script: string, args: string[]) => {
  const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(here, script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!);
};
const threads = ['--threads', values.threads!];
const float = child('measure-serve.ts', ['--model', floatDir, ...threads]);
const calibration = path.join(here, '..', 'plugins', 'quant-smoothquant', 'src', '__fixtures__', 'calibration.txt');
const q = child('measure-quantize.ts', ['--model', floatDir, '--output', quantDir, '--calibration', calibration, ...threads]);
const int8 = child('measure-serve.ts', ['--model', quantDir, ...threads]);
const int8f16 = child('measure-serve.ts', ['--model', quantDir, ...threads, '--kv-dtype', 'float16']);
const env = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(here, '..', 'packages', 'cli', 'src', 'bin.ts'), 'env'], { encoding: 'utf8' }).trim();

const machine = `${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const date = new Date().toISOString().slice(0, 10);
console.log(`\n${date} · ${machine} · Qwen3-0.6B shape (${layers} layers), random bf16 weights · ${values.threads} threads`);
console.log(`\`qllm env\`: ${env}\n`);
console.log('| model | KV cache | load | prefill (128 tokens) | time to first token | decode, 1 sequence | 4 sequences | 16 sequences | step at context 32 | at 2048 | peak RSS |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [name, r] of [['bf16 → float32 compute', float], ['SmoothQuant A8W8 (int8 GEMMs)', int8], ['SmoothQuant A8W8 (int8 GEMMs)', int8f16]] as const) {
  console.log(`| ${name} | ${r.kvCacheDtype} | ${r.loadS} s | ${r.prefillTokPerS} tok/s | ${r.ttftMs} ms | ${r.decodeTokPerS} tok/s | ` +
    `${r.decode4TokPerS} tok/s | ${r.decode16TokPerS} tok/s | ${r.stepMsCtx32} ms | ${r.stepMsCtx2048} ms | ${r.peakRssGiB} GiB |`);
}
console.log(`\nSmoothQuant quantization: ${q.wallS} s wall, peak RSS ${q.peakRssGiB} GiB, ${q.calibrationSamples} calibration samples ` +
  `(${q.calibrationTokens} tokens); held-out mean KL ${q.meanKl.toExponential(2)}, top-1 agreement ${(100 * q.top1Agreement).toFixed(1)}%`);
