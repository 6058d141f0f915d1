/**
 * `pnpm bench [--layers N] [--threads T]`: a Qwen3-0.6B-shaped random bf16 checkpoint (hidden 1024, 28 layers,
 * 16/8 heads, head_dim 128, intermediate 3072, tied, vocab 151936) made with @qllm/testing's generator; then
 *   1. serve it (float32 compute): load time, prefill tok/s (128 tokens), decode tok/s (64 steps);
 *   2. quantize it with SmoothQuant A8W8: wall time and peak RSS;
 *   3. serve the A8W8 folder the same way.
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

const machine = `${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const date = new Date().toISOString().slice(0, 10);
console.log(`\n${date} · ${machine} · Qwen3-0.6B shape (${layers} layers), random bf16 weights · ${values.threads} threads\n`);
console.log('| model | load | prefill (128 tokens) | decode | peak RSS |');
console.log('|---|---:|---:|---:|---:|');
for (const [name, r] of [['bf16 → float32 compute', float], ['SmoothQuant A8W8 (int8 GEMMs)', int8]] as const) {
  console.log(`| ${name} | ${r.loadS} s | ${r.prefillTokPerS} tok/s | ${r.decodeTokPerS} tok/s | ${r.peakRssGiB} GiB |`);
}
console.log(`\nSmoothQuant quantization: ${q.wallS} s wall, peak RSS ${q.peakRssGiB} GiB, ${q.calibrationSamples} calibration samples ` +
  `(${q.calibrationTokens} tokens); held-out mean KL ${q.meanKl.toExponential(2)}, top-1 agreement ${(100 * q.top1Agreement).toFixed(1)}%`);
