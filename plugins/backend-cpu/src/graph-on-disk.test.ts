// A model reaches onnxruntime as a folder (model.onnx + weights.bin) with its weights in their stored width: 16-bit
// tensors stay 16-bit on disk (widened by a Cast the session folds, or after a Gather), row blocks are views of one
// tensor's bytes, and the graph cache gives back the same folder only for the same graph and the same checkpoint.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bf16ToF32, Checkpoint, createGraphContext, f32ToBf16, writeGraph, writeSafetensors, type BuiltModel, type ModelConfigV1,
} from '@qllm/core';
import { createCpuBackend } from './cpu-backend.js';

const ROWS = 4096;
const WIDTH = 16;
const OUT = 2100; // both over the 64 KiB below which 16-bit tensors are widened at load
let root: string;
let checkpoint: Checkpoint;
const emb = f32ToBf16(Float32Array.from({ length: ROWS * WIDTH }, (_, i) => Math.sin(i) * 3));
const w = f32ToBf16(Float32Array.from({ length: OUT * WIDTH }, (_, i) => Math.cos(i * 0.7)));

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-disk-'));
  await writeSafetensors(path.join(root, 'model.safetensors'), [
    { name: 'emb', dtype: 'BF16', shape: [ROWS, WIDTH], data: emb },
    { name: 'w', dtype: 'BF16', shape: [OUT, WIDTH], data: w },
  ]);
  checkpoint = await Checkpoint.open(root);
});
afterAll(async () => {
  await checkpoint?.close();
  await fs.rm(root, { recursive: true, force: true });
});

const config = { architecture: 'test', hiddenSize: WIDTH, numLayers: 0, numKvHeads: 1, headDim: 4, vocabSize: ROWS, maxPositionEmbeddings: 8, torchDtype: 'bfloat16' } satisfies ModelConfigV1;
const ids = [0, 4095, 2, 1023, 1024, 2047, 2048, 3072, 1];

/** Embedding rows (in blocks of 1024 rows: views of one tensor), then y = x · Wᵀ with W in two row blocks. */
function graph() {
  const ctx = createGraphContext({ checkpoint, config, linearMethod: () => null, maxInitializerBytes: 1024 * WIDTH * 2 });
  const x = ctx.embedding('emb', [ROWS, WIDTH], ctx.g.input('ids', 'int64', ['n']));
  const parts = [ctx.floatWeightRows('w', [OUT, WIDTH], 0, 700), ctx.floatWeightRows('w', [OUT, WIDTH], 700, 1400)]
    .map((wb) => ctx.g.op('Gemm', [x, wb], { transB: 1 }));
  ctx.g.output(x, 'rows', 'float32', ['n', WIDTH]);
  ctx.g.output(ctx.g.op('Concat', parts, { axis: -1 }), 'y', 'float32', ['n', OUT]);
  return ctx.g;
}

async function run(model: BuiltModel) {
  const session = await createCpuBackend({ threads: 1 }).createSession(model);
  const out = await session.run({ ids: { dtype: 'I64', shape: [ids.length], data: BigInt64Array.from(ids.map(BigInt)) } });
  const result = { rows: [...(session.toHost(out.rows!).data as Float32Array)], y: [...(session.toHost(out.y!).data as Float32Array)] };
  await session.dispose();
  return result;
}

describe('a model on disk', () => {
  it('keeps 16-bit weights 16-bit in weights.bin and computes the exact float32 result', async () => {
    const written = await writeGraph(graph(), { sources: checkpoint.filePaths() });
    // Both tensors once, 2 bytes an element, each page-aligned: nothing widened, views add no bytes.
    const size = (await fs.stat(path.join(written.dir, "weights.bin"))).size;
    expect(size).toBeGreaterThanOrEqual((ROWS + OUT) * WIDTH * 2);
    expect(size).toBeLessThan((ROWS + OUT) * WIDTH * 2 + 2 * 4096);
    const got = await run(written.model);
    await written.release();
    await expect(fs.stat(written.dir)).rejects.toThrow(); // a temporary folder is removed

    const embF = bf16ToF32(emb);
    const wF = bf16ToF32(w);
    ids.forEach((id, i) => expect(got.rows.slice(i * WIDTH, (i + 1) * WIDTH)).toEqual([...embF.subarray(id * WIDTH, (id + 1) * WIDTH)]));
    for (const [i, id] of ids.entries()) {
      for (let o = 0; o < OUT; o++) {
        let dot = 0;
        for (let k = 0; k < WIDTH; k++) dot += embF[id * WIDTH + k]! * wF[o * WIDTH + k]!;
        expect(got.y[i * OUT + o]).toBeCloseTo(dot, 4);
      }
    }
    // The same graph built in memory gives the same numbers.
    expect(await run(await graph().build())).toEqual(got);
  });

  it('is found in the graph cache for the same graph and checkpoint, and not after either changes', async () => {
    const cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-cache-'));
    try {
      const sources = checkpoint.filePaths();
      const first = await writeGraph(graph(), { cacheDir, sources });
      expect(first.cached).toBe(false);
      const second = await writeGraph(graph(), { cacheDir, sources });
      expect(second).toMatchObject({ cached: true, dir: first.dir });
      expect(await run(second.model)).toEqual(await run(first.model));

      // A different graph (here: different row blocks) is a different entry.
      const other = createGraphContext({ checkpoint, config, linearMethod: () => null });
      other.g.output(other.embedding('emb', [ROWS, WIDTH], other.g.input('ids', 'int64', ['n'])), 'rows', 'float32', ['n', WIDTH]);
      expect((await writeGraph(other.g, { cacheDir, sources })).dir).not.toBe(first.dir);

      // A checkpoint that changed (its modification time) is a different entry.
      const file = sources[0]!;
      const later = new Date(Date.now() + 60_000);
      await fs.utimes(file, later, later);
      const touched = await writeGraph(graph(), { cacheDir, sources });
      expect(touched).toMatchObject({ cached: false });
      expect(touched.dir).not.toBe(first.dir);

      // A damaged entry (a short weights file) is written again, not used.
      await fs.truncate(path.join(touched.dir, 'weights.bin'), 100);
      const repaired = await writeGraph(graph(), { cacheDir, sources });
      expect(repaired).toMatchObject({ cached: false, dir: touched.dir });
      expect(await run(repaired.model)).toEqual(await run(first.model));
      // No partial folders are left behind.
      expect((await fs.readdir(cacheDir)).filter((n) => n.includes('.partial-'))).toEqual([]);
    } finally {
      await fs.rm(cacheDir, { recursive: true, force: true });
    }
  });

  it('leaves nothing behind when a weight cannot be read', async () => {
    const cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-cache-'));
    try {
      const g = graph();
      g.initializer('broken', 'float32', [2000], () => { throw new Error('disk on fire'); });
      await expect(writeGraph(g, { cacheDir, sources: checkpoint.filePaths() })).rejects.toThrow('disk on fire');
      expect(await fs.readdir(cacheDir)).toEqual([]);
    } finally {
      await fs.rm(cacheDir, { recursive: true, force: true });
    }
  });
});
