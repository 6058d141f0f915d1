/**
 * Where a model's graph goes before a backend session reads it: a folder holding `model.onnx` and `weights.bin`
 * (the initializers in the width the graph stores them, page-aligned so onnxruntime can map them). Writing it streams
 * one tensor at a time, so JavaScript never holds more than one weight; the backend reads the folder itself, so
 * the weights are never held twice.
 *
 * In a cache folder (`cacheDir`) the entry is keyed on the graph (the ModelProto, which records every shape, dtype
 * and option that shaped it), the checkpoint files it reads (path, size, modification time) and the cache format:
 * the second load of the same model with the same options skips reading and converting the checkpoint. Without a
 * cache folder the graph is written to a temporary folder that `release()` removes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MODEL_FILE, WEIGHTS_FILE, type GraphBuilder, type ModelOnDisk } from './graph-builder.js';

/** Bumped whenever the bytes a graph writes for the same ModelProto could change (a conversion's code). */
const CACHE_FORMAT = 'qllm-graph-v1';
const ENTRY_FILE = 'entry.json';

export interface WriteGraphOptions {
  /** The cache's root folder; undefined: a temporary folder, removed by `release()`. */
  cacheDir?: string;
  /** The checkpoint files the weights come from. */
  sources: readonly string[];
  /** Graphs with fewer weight bytes than this go to a temporary folder even when a cache folder is given. */
  minCachedBytes?: number;
  /** Told when weights start being written (not called on a cache hit). */
  onStart?: () => void;
  /** Told the weight bytes written so far (for a progress bar). */
  onBytes?: (written: number, total: number) => void;
}

export interface WrittenGraph {
  model: ModelOnDisk;
  /** Whether the folder was already in the cache. */
  cached: boolean;
  /** The folder holding the model. */
  dir: string;
  /** Remove a temporary folder (a no-op for a cache entry); call it once the backend session is created. */
  release(): Promise<void>;
}

interface Entry {
  format: string;
  weightBytes: number;
  sources: string[];
  created: string;
}

/** Identity of the checkpoint files: what they are and when they last changed. */
async function sourceIdentity(sources: readonly string[]): Promise<string> {
  const parts = await Promise.all(sources.map(async (file) => {
    const s = await stat(file);
    return `${path.resolve(file)}:${s.size}:${s.mtimeMs}:${s.ino}`;
  }));
  return parts.join('\n');
}

async function readEntry(dir: string): Promise<Entry | undefined> {
  try {
    const entry = JSON.parse(await readFile(path.join(dir, ENTRY_FILE), 'utf8')) as Entry;
    const weights = await stat(path.join(dir, WEIGHTS_FILE));
    await stat(path.join(dir, MODEL_FILE));
    return entry.format === CACHE_FORMAT && weights.size === entry.weightBytes ? entry : undefined;
  } catch {
    return undefined;
  }
}

/** Write `g` as a model folder (or find it in the cache). */
export async function writeGraph(g: GraphBuilder, options: WriteGraphOptions): Promise<WrittenGraph> {
  const plan = await g.plan();
  const onDisk = (dir: string): ModelOnDisk => ({ path: path.join(dir, MODEL_FILE), ...plan.signature });

  const fill = async (dir: string): Promise<void> => {
    options.onStart?.();
    await plan.writeWeights(path.join(dir, WEIGHTS_FILE), options.onBytes);
    await writeFile(path.join(dir, MODEL_FILE), plan.model);
  };

  if (options.cacheDir === undefined || plan.weightBytes < (options.minCachedBytes ?? 0)) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'qllm-graph-'));
    try {
      await fill(dir);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    return { model: onDisk(dir), cached: false, dir, release: () => rm(dir, { recursive: true, force: true }) };
  }

  const key = createHash('sha256')
    .update(CACHE_FORMAT).update('\0')
    .update(await sourceIdentity(options.sources)).update('\0')
    .update(plan.model)
    .digest('hex')
    .slice(0, 32);
  const dir = path.join(options.cacheDir, key);
  const done = { model: onDisk(dir), dir, release: async () => {} };
  if (await readEntry(dir)) return { ...done, cached: true };

  // Written beside its final place and renamed into it: a reader sees a whole entry or none.
  await mkdir(options.cacheDir, { recursive: true });
  const partial = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(partial);
  try {
    await fill(partial);
    const entry: Entry = { format: CACHE_FORMAT, weightBytes: plan.weightBytes, sources: [...options.sources], created: new Date().toISOString() };
    await writeFile(path.join(partial, ENTRY_FILE), `${JSON.stringify(entry, null, 2)}\n`);
    await rm(dir, { recursive: true, force: true }); // a damaged entry (no entry.json or a short weights file)
    await rename(partial, dir);
  } catch (e) {
    await rm(partial, { recursive: true, force: true });
    // Another process finished the same entry first: use it.
    if (await readEntry(dir)) return { ...done, cached: true };
    throw e;
  }
  return { ...done, cached: false };
}

/** The default cache folder: `$QLLM_CACHE_DIR`, else `$XDG_CACHE_HOME/qllm`, else `~/.cache/qllm`. */
export function defaultCacheDir(): string {
  if (process.env.QLLM_CACHE_DIR) return process.env.QLLM_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'qllm');
}
