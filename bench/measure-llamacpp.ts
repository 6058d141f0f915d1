/**
 * One llama.cpp measurement in its own process, for `pnpm bench`: node-llama-cpp 3.22.1's prebuilt CPU build (never
 * downloaded or built) on a GGUF file qllm exported. `node --conditions=source --import tsx bench/measure-llamacpp.ts
 * --model FILE.gguf [--threads T] [--concurrency 1,4,16]`. The same workload as bench/measure-qllm.ts (workload.ts):
 *   - load: `loadModel` + `createContext` (16 sequences of 256 positions each), the first in this fresh process
 *     (`loadS`), then both disposed and done again in the same process (`reloadS`). llama.cpp maps the file (mmap),
 *     so pages already in the OS page cache are not read again, and untouched pages are read at first use;
 *   - prefill tok/s and time to first token: a 128-token prompt on a cleared sequence, one token generated (greedy),
 *     median of 3 prompts;
 *   - decode tok/s: N sequences of the one context at once (1, 4, 16), each a 128-token prompt then 65 tokens greedy,
 *     stepped in lockstep with `controlledEvaluate` so that each decode step is one llama_decode batch of N tokens
 *     (`decodeBatches` in the output counts the batch sizes). node-llama-cpp's `evaluate()` generators, one per
 *     sequence, do not share batches reliably: its batch loop dispatches as soon as one sequence has queued a token,
 *     so sequences whose sampling finished later go in the next batch (measured: 2 sequences took 2 batches a step);
 *   - peak RSS (VmHWM, reset after the first load is disposed: the second load and the workload; the mapped model
 *     pages count, as they are resident).
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import {
  aggregateDecode, DECODE_SALT, DECODE_TOKENS, MAX_MODEL_LEN, MAX_SEQUENCES, median, peakRssGiB, PREFILL_REPEATS, resetPeakRss,
  PREFILL_SALT, promptIds, PROMPT_TOKENS, WARMUP_SALT, type Measurement,
} from './workload.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    concurrency: { type: 'string', default: '1,4,16' },
  },
});
const threads = Number(values.threads);
const concurrency = values.concurrency!.split(',').map(Number);

// Never download or build: the prebuilt CPU binary or an error. maxThreads bounds llama.cpp's pool (its default on a
// CPU is max(cores, 4), more threads than this machine has cores).
const llama = await getLlama({ build: 'never', gpu: false, skipDownload: true, usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: threads });

async function load(): Promise<{ model: LlamaModel; context: LlamaContext; seconds: number }> {
  const t = performance.now();
  const model = await llama.loadModel({ modelPath: values.model! });
  const context = await model.createContext({ sequences: MAX_SEQUENCES, contextSize: MAX_MODEL_LEN, threads });
  return { model, context, seconds: (performance.now() - t) / 1000 };
}

const first = await load();
await first.context.dispose();
await first.model.dispose();
// The peak RSS reported is the second load's and the workload's, as in a process that loads once.
const peakReset = resetPeakRss();
const { model, context, seconds: reloadS } = await load();
const sequences: LlamaContextSequence[] = Array.from({ length: MAX_SEQUENCES }, () => context.getSequence());

const greedyNext = { generateNext: { token: true, options: { temperature: 0 } } } as const;

/** Evaluate `tokens` on `sequence` and return the greedy next token (one llama_decode batch, shared with the other sequences stepping now). */
async function step(sequence: LlamaContextSequence, tokens: number[]): Promise<Token> {
  const input: ControlledEvaluateInputItem[] = tokens.map((t, i) => (i === tokens.length - 1 ? [t as Token, greedyNext] : (t as Token)));
  const out = await sequence.controlledEvaluate(input);
  const next = out[tokens.length - 1]?.next.token;
  if (next == null) throw new Error('llama.cpp returned no token');
  return next;
}

/**
 * Greedy generation of `maxTokens` tokens after each prompt, all sequences stepping in lockstep (every step starts the
 * next evaluation of every sequence in the same tick, so node-llama-cpp puts them in one batch, as a server's step loop
 * does); returns each sequence's token arrival times (ms). Sequences are cleared first (not timed).
 */
async function generate(prompts: number[][], maxTokens: number): Promise<number[][]> {
  const used = sequences.slice(0, prompts.length);
  await Promise.all(used.map((s) => s.clearHistory()));
  const times: number[][] = prompts.map(() => []);
  let next = await Promise.all(used.map((s, i) => step(s, prompts[i]!)));
  for (let k = 1; ; k++) {
    const now = performance.now();
    for (const t of times) t.push(now);
    if (k === maxTokens) break;
    next = await Promise.all(used.map((s, i) => step(s, [next[i]!])));
  }
  return times;
}

// Batch sizes given to llama_decode (node-llama-cpp's internal binding, wrapped to count them): a check that the
// sequences of a concurrent run really share each decode step.
const batchSizes: number[] = [];
const internal = context as unknown as { _ctx?: Record<string | symbol, unknown> };
if (internal._ctx) {
  internal._ctx = new Proxy(internal._ctx, {
    get(target, prop) {
      const value = target[prop];
      if (typeof value !== 'function') return value;
      if (prop === 'initBatch') return (n: number) => { batchSizes.push(n); return (value as (n: number) => unknown).call(target, n); };
      return (value as (...args: unknown[]) => unknown).bind(target);
    },
  });
}

await generate([promptIds(8, WARMUP_SALT)], 2); // warm-up

const prefillMs: number[] = [];
const ttftMs: number[] = [];
for (let rep = 0; rep < PREFILL_REPEATS; rep++) {
  await sequences[0]!.clearHistory();
  const t = performance.now();
  const [[firstToken]] = await generate([promptIds(PROMPT_TOKENS, PREFILL_SALT + rep)], 1) as [[number]];
  ttftMs.push(firstToken - t);
  prefillMs.push(performance.now() - t);
}

const decode: Record<string, number> = {};
const decodeBatches: Record<string, Record<number, number>> = {};
for (const n of concurrency) {
  const prompts = Array.from({ length: n }, (_, i) => promptIds(PROMPT_TOKENS, DECODE_SALT + i));
  batchSizes.length = 0;
  decode[n] = aggregateDecode(await generate(prompts, DECODE_TOKENS + 1)).tokPerS;
  decodeBatches[n] = {};
  for (const b of batchSizes) decodeBatches[n][b] = (decodeBatches[n][b] ?? 0) + 1;
}

const result: Measurement & { flashAttention: boolean | 'auto'; batchSize: number; contextThreads: number; decodeBatches: Record<string, Record<number, number>>; peakReset: boolean } = {
  engine: 'llama.cpp',
  model: values.model!,
  loadS: first.seconds,
  reloadS,
  prefillTokPerS: (PROMPT_TOKENS / median(prefillMs)) * 1000,
  ttftMs: median(ttftMs),
  decode,
  peakRssGiB: peakRssGiB(),
  threads,
  flashAttention: context.flashAttention,
  batchSize: context.batchSize,
  contextThreads: context.idealThreads,
  decodeBatches,
  peakReset,
};
await context.dispose();
await model.dispose();
await llama.dispose();
console.log(JSON.stringify(result));
