/**
 * The workload both engines run in `pnpm bench` (bench/measure-qllm.ts, bench/measure-llamacpp.ts): the same prompt
 * token ids, lengths and counting rules, so the two measurements differ only in the engine.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** Prompt length of the prefill, time-to-first-token and decode measurements. */
export const PROMPT_TOKENS = 128;
/** Tokens decoded after the first one (so each request generates DECODE_TOKENS + 1). */
export const DECODE_TOKENS = 64;
/** Prefill repeats per process (each a different prompt); the process reports their median. */
export const PREFILL_REPEATS = 3;
/** KV positions per sequence: a 128-token prompt plus 65 generated, rounded up. */
export const MAX_MODEL_LEN = 256;
/** The most sequences decoding at once. */
export const MAX_SEQUENCES = 16;

/**
 * A fixed prompt of `n` token ids, different for each `salt`, all in [100, 150100) (ordinary tokens of Qwen3's
 * 151936-entry vocabulary, no special ids). Both engines get exactly these ids.
 */
export function promptIds(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 100 + ((i * 7919 + salt * 104729) % 150000));
}

/** Salts: the warm-up, the prefill repeats, and the decode sequences (sequence i of a concurrent run: DECODE_SALT + i). */
export const WARMUP_SALT = 0;
export const PREFILL_SALT = 1;
export const DECODE_SALT = 100;

/**
 * Aggregate decode tokens/s of sequences that ran together, from each sequence's token arrival times (ms): the window
 * starts when every sequence has its first token (the end of the last prefill) and ends when the last one finishes;
 * tokens that arrived inside the window count. With one sequence: 64 tokens over the time from the first token to
 * the 65th.
 */
export function aggregateDecode(arrivals: number[][]): { tokPerS: number; tokens: number; windowMs: number } {
  const start = Math.max(...arrivals.map((a) => a[0]!));
  const end = Math.max(...arrivals.map((a) => a[a.length - 1]!));
  const tokens = arrivals.reduce((n, a) => n + a.filter((t) => t > start).length, 0);
  return { tokPerS: (tokens / (end - start)) * 1000, tokens, windowMs: end - start };
}

/**
 * Token arrival times (ms) of one streamed request (qllm's `llm.stream`, RequestOutput deltas): each delta's tokens
 * arrive when the delta does.
 */
export async function tokenArrivals(deltas: AsyncIterable<{ outputs: ReadonlyArray<{ tokenIds: readonly number[] }> }>): Promise<number[]> {
  const times: number[] = [];
  for await (const out of deltas) {
    const now = performance.now();
    for (let i = 0; i < out.outputs[0]!.tokenIds.length; i++) times.push(now);
  }
  return times;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Peak resident set of this process, GiB: /proc/self/status VmHWM (since the start or resetPeakRss), else getrusage's maxRSS. */
export function peakRssGiB(): number {
  try {
    const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib) return Number(kib) / 2 ** 20;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 2 ** 20;
}

/** Reset VmHWM to the current RSS (Linux: `5` to /proc/self/clear_refs); false where that is not possible. */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** What a measurement process prints as its last stdout line. */
export interface Measurement {
  engine: 'qllm' | 'llama.cpp';
  model: string;
  /** Load time of this process's model: qllm with the graph cache given (warm when it holds the graph), llama.cpp's first load. */
  loadS: number;
  /** llama.cpp only: a second load of the same file in the same process. */
  reloadS?: number;
  /** qllm only: whether the graph came from the graph cache. */
  graphCached?: boolean;
  prefillTokPerS: number;
  ttftMs: number;
  /** Aggregate decode tok/s by number of concurrent sequences. */
  decode: Record<string, number>;
  /** Concurrency levels that failed, with the error's first line (later levels are not run). */
  decodeErrors?: Record<string, string>;
  peakRssGiB: number;
  threads: number;
}
