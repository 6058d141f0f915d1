// ctx.embedding splits a matrix over the initializer limit into row blocks; the gathered rows must be exactly the
// rows of the matrix, at every block boundary, whatever the block size.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, createGraphContext, writeSafetensors, type ModelConfigV1 } from '@qllm/core';
import { createCpuBackend } from './cpu-backend.js';

const ROWS = 10;
const WIDTH = 4;
let root: string;
let checkpoint: Checkpoint;
const matrix = Float32Array.from({ length: ROWS * WIDTH }, (_, i) => i * 0.5 - 7);

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-embed-'));
  await writeSafetensors(path.join(root, 'model.safetensors'), [{ name: 'emb', dtype: 'F32', shape: [ROWS, WIDTH], data: matrix }]);
  checkpoint = await Checkpoint.open(root);
});
afterAll(async () => {
  await checkpoint?.close();
  await fs.rm(root, { recursive: true, force: true });
});

const config = { architecture: 'test', hiddenSize: WIDTH, numLayers: 0, numKvHeads: 1, headDim: 4, vocabSize: ROWS, maxPositionEmbeddings: 8, torchDtype: 'float32' } satisfies ModelConfigV1;

describe('ctx.embedding', () => {
  it.each([1, 3, 4, 10, 16])('gathers exact rows with blocks of %i rows', async (blockRows) => {
    const ctx = createGraphContext({ checkpoint, config, linearMethod: () => null, maxInitializerBytes: blockRows * WIDTH * 4 });
    const ids = ctx.g.input('ids', 'int64', ['n']);
    ctx.g.output(ctx.embedding('emb', [ROWS, WIDTH], ids), 'rows', 'float32', ['n', WIDTH]);
    const session = await createCpuBackend({ threads: 1 }).createSession(await ctx.g.build());
    const wanted = [0, 9, 2, 3, 4, 5, 9, 1, 0];
    const out = await session.run({ ids: { dtype: 'I64', shape: [wanted.length], data: BigInt64Array.from(wanted.map(BigInt)) } });
    const got = session.toHost(out.rows!).data as Float32Array;
    wanted.forEach((id, i) => expect([...got.subarray(i * WIDTH, (i + 1) * WIDTH)]).toEqual([...matrix.subarray(id * WIDTH, (id + 1) * WIDTH)]));
    await session.dispose();
  });
});
