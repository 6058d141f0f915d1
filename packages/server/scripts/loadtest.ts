/**
 * `pnpm loadtest` (in packages/server): a bounded load test of the server on loopback only.
 *
 * Starts the server in a child process on 127.0.0.1 (a free port) over a Qwen3-0.6B-shaped SmoothQuant A8W8 model
 * (random weights, made once with @qllm/testing and `quantize` into the same folder `pnpm bench` uses), then runs
 * `--concurrency` streaming clients (the official `openai` client) for `--duration` seconds or `--max-requests`
 * requests, whichever comes first. A 429 is expected under overload: the client waits Retry-After and goes on; any
 * other error counts as an error (exit code 1). Prints p50/p99 time to first token and inter-token latency, aggregate
 * tokens/s, and the server's RSS before and after; then stops the server with SIGTERM (it must exit 0).
 *
 *   pnpm loadtest                                    # 64 streams, 120 s, the 0.6B-shaped A8W8 model
 *   pnpm loadtest --duration 10 --concurrency 4     # a smoke run
 *   pnpm loadtest --model ./Qwen3-0.6B-A8W8         # a real model folder
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    duration: { type: 'string', default: '120' },
    'max-requests': { type: 'string', default: '5000' },
    'max-tokens': { type: 'string', default: '64' },
    'max-num-seqs': { type: 'string', default: '16' },
    'max-model-len': { type: 'string', default: '512' },
    'max-queue': { type: 'string', default: '64' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
  },
});
const num = (name: keyof typeof values, min: number, max: number) => {
  const v = Number(values[name]);
  if (!(Number.isInteger(v) && v >= min && v <= max)) throw new Error(`--${name} must be an integer in [${min}, ${max}], got ${String(values[name])}`);
  return v;
};
const concurrency = num('concurrency', 1, 1024);
const durationS = num('duration', 1, 3600);
const maxRequests = num('max-requests', 1, 1_000_000);
const maxTokens = num('max-tokens', 1, 4096);

/** The default model: the Qwen3-0.6B shape, quantized A8W8, made on first use (about two minutes, 2 GB of disk). */
async function defaultModel(): Promise<string> {
  const root = path.join(os.tmpdir(), 'qllm-bench');
  const floatDir = path.join(root, 'qwen3-0.6b-shape-l28');
  const quantDir = `${floatDir}-A8W8`;
  if (fs.existsSync(path.join(quantDir, 'config.json'))) return quantDir;
  const { makeTinyQwen3, QWEN3_0_6B_SHAPE } = await import('@qllm/testing');
  const { quantize } = await import('qllm');
  if (!fs.existsSync(path.join(floatDir, 'config.json'))) {
    console.error(`making ${floatDir} (Qwen3-0.6B shape, random weights)…`);
    await makeTinyQwen3(floatDir, { ...QWEN3_0_6B_SHAPE, seed: 1 });
  }
  console.error(`quantizing to ${quantDir} (SmoothQuant A8W8)…`);
  const calibration = path.join(here, '..', '..', '..', 'plugins', 'quant-smoothquant', 'src', '__fixtures__', 'calibration.txt');
  await quantize({ model: floatDir, output: quantDir, overwrite: true, calibration: { files: [calibration] } });
  return quantDir;
}

const model = values.model ?? (await defaultModel());
const rssOf = (pid: number) => {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMiB: +(kb('VmRSS') / 1024).toFixed(0), peakMiB: +(kb('VmHWM') / 1024).toFixed(0) };
};

// The server: a child process, loopback only.
const child = spawn(
  process.execPath,
  ['--conditions=source', '--import', 'tsx', path.join(here, 'loadtest-server.ts'), '--model', model, '--threads', values.threads!,
    '--max-num-seqs', values['max-num-seqs']!, '--max-model-len', values['max-model-len']!, '--max-queue', values['max-queue']!],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const hardStop = setTimeout(() => {
  console.error('loadtest: hard deadline passed; killing the server');
  child.kill('SIGKILL');
  process.exit(1);
}, (durationS + 600) * 1000);
hardStop.unref();
const url = await new Promise<string>((resolve, reject) => {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    const m = /^listening (http:\/\/127\.0\.0\.1:\d+)$/m.exec(out);
    if (m) resolve(m[1]!);
  });
  child.on('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
});
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'loadtest', maxRetries: 0, timeout: (durationS + 300) * 1000 });
// Warm up, then measure the resting RSS.
await client.completions.create({ model: 'loadtest', prompt: 'warm up', max_tokens: 4, temperature: 0 });
const before = rssOf(child.pid!);

const PROMPTS = ['Tell me a story about', 'The capital of France is', 'List three colours:', 'Once upon a time', 'In 1905, Einstein',
  'A recipe for bread:', 'The quick brown fox', 'Explain the KV cache:'];
const ttfts: number[] = [];
const itls: number[] = [];
let tokens = 0;
let issued = 0;
let completed = 0;
let rejected429 = 0;
const errors: string[] = [];
const t0 = performance.now();
const deadline = t0 + durationS * 1000;
// RSS once the load has warmed the engine (every KV-cache slot written, whose pages the OS commits on first touch):
// from here to the end it must stay flat.
let warm: ReturnType<typeof rssOf> | undefined;
const warmTimer = setTimeout(() => (warm = rssOf(child.pid!)), durationS * 250);

async function worker(w: number): Promise<void> {
  while (performance.now() < deadline && issued < maxRequests) {
    const n = issued++;
    const start = performance.now();
    try {
      const stream = await client.completions.create({
        model: 'loadtest', prompt: `${PROMPTS[(w + n) % PROMPTS.length]} (${n})`, max_tokens: maxTokens, temperature: 0,
        stream: true, stream_options: { include_usage: true }, ignore_eos: true,
      } as never);
      let last = 0;
      for await (const chunk of stream as unknown as AsyncIterable<{ choices: Array<{ text: string }>; usage?: { completion_tokens: number } | null }>) {
        const now = performance.now();
        if (chunk.choices.length && chunk.choices[0]!.text !== '') {
          if (last === 0) ttfts.push(now - start);
          else itls.push(now - last);
          last = now;
        }
        if (chunk.usage) tokens += chunk.usage.completion_tokens;
      }
      completed++;
    } catch (e) {
      if (e instanceof OpenAI.RateLimitError) {
        rejected429++;
        const wait = Number(e.headers?.get?.('retry-after') ?? 1);
        await new Promise((r) => setTimeout(r, Math.min(Math.max(wait, 0.1), 10) * 1000));
      } else {
        errors.push(e instanceof Error ? e.message : String(e));
      }
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
const elapsedS = (performance.now() - t0) / 1000;
const after = rssOf(child.pid!);
clearTimeout(warmTimer);
child.kill('SIGTERM');
const exitCode = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const ms = (x: number) => `${x.toFixed(0)} ms`;
const result = {
  model, concurrency, durationS: +elapsedS.toFixed(1), maxTokens, requests: { issued, completed, rejected429, errors: errors.length },
  ttftMs: { p50: +pct(ttfts, 50).toFixed(1), p99: +pct(ttfts, 99).toFixed(1) },
  itlMs: { p50: +pct(itls, 50).toFixed(1), p99: +pct(itls, 99).toFixed(1) },
  tokensPerS: +(tokens / elapsedS).toFixed(1), rss: { before, warm, after }, serverExitCode: exitCode,
};
console.log(`\nloadtest: ${concurrency} streams for ${elapsedS.toFixed(1)} s on ${model}`);
console.log(`requests: ${completed} completed of ${issued} issued, ${rejected429} answered 429 (expected under overload), ${errors.length} errors`);
console.log(`time to first token: p50 ${ms(result.ttftMs.p50)}, p99 ${ms(result.ttftMs.p99)}`);
console.log(`inter-token latency: p50 ${ms(result.itlMs.p50)}, p99 ${ms(result.itlMs.p99)}`);
console.log(`throughput: ${result.tokensPerS} generated tok/s aggregate (${tokens} tokens)`);
console.log(`server RSS: ${before.rssMiB} MiB before, ${warm?.rssMiB ?? '?'} MiB at a quarter of the run, ${after.rssMiB} MiB after ` +
  `(peak ${after.peakMiB} MiB); exit code on SIGTERM: ${exitCode}`);
for (const e of errors.slice(0, 5)) console.log(`error: ${e}`);
console.log(JSON.stringify(result));
process.exitCode = errors.length === 0 && exitCode === 0 ? 0 : 1;
