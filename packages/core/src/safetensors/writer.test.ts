import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointError } from '../errors.js';
import { f32ToBf16, f32ToF16 } from '../tensor/dtype.js';
import { Checkpoint, SafetensorsFile } from './reader.js';
import { ShardedSafetensorsWriter, writeSafetensors, writeShardedSafetensors, type TensorEntry } from './writer.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-st-writer-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const everyDtype: TensorEntry[] = [
  { name: 'f64', dtype: 'F64', shape: [3], data: new Float64Array([1.5, -2.25, Math.PI]) },
  { name: 'f32', dtype: 'F32', shape: [2, 2], data: new Float32Array([0.1, -0, Infinity, 3.5e-40]) },
  { name: 'f16', dtype: 'F16', shape: [3], data: f32ToF16([1, -65504, 6e-8]) },
  { name: 'bf16', dtype: 'BF16', shape: [5], data: new Uint16Array([0x3f80, 0xbf80, 0x7fc1, 0x0001, 0xffff]) },
  { name: 'i64', dtype: 'I64', shape: [3], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 42n]) },
  { name: 'i32', dtype: 'I32', shape: [2], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1]) },
  { name: 'i16', dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]) },
  { name: 'i8', dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
  { name: 'u8', dtype: 'U8', shape: [1, 3], data: new Uint8Array([0, 128, 255]) },
  { name: 'bool', dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
  { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([7]) },
  { name: 'empty', dtype: 'BF16', shape: [0, 4], data: new Uint16Array(0) },
];

describe('writeSafetensors', () => {
  it('round-trips every dtype exactly, including 0-rank and empty tensors', async () => {
    const file = path.join(dir, 'all.safetensors');
    await writeSafetensors(file, everyDtype, { format: 'pt' });
    const st = await SafetensorsFile.open(file);
    try {
      expect(st.metadata).toEqual({ format: 'pt' });
      expect(st.tensors().map((t) => t.name)).toEqual(everyDtype.map((e) => e.name));
      for (const entry of everyDtype) {
        const t = await st.read(entry.name);
        expect(t.dtype).toBe(entry.dtype);
        expect(t.shape).toEqual(entry.shape);
        expect(t.data.constructor).toBe((entry.data as object).constructor);
        expect(t.data).toEqual(entry.data);
        expect(t.data.byteOffset % 8).toBe(0);
      }
    } finally {
      await st.close();
    }
  });

  it('writes contiguous offsets and pads the header with spaces so 8+N is a multiple of 8', async () => {
    const file = path.join(dir, 'a.safetensors');
    await writeSafetensors(file, [
      { name: 'x', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
      { name: 'y', dtype: 'BF16', shape: [2], data: f32ToBf16([1, 2]) },
    ]);
    const bytes = await readFile(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const headerText = bytes.subarray(8, 8 + n).toString('utf8');
    const json = headerText.trimEnd();
    expect(headerText.slice(json.length)).toMatch(/^ *$/);
    expect(JSON.parse(json)).toEqual({
      x: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
      y: { dtype: 'BF16', shape: [2], data_offsets: [3, 7] },
    });
    expect(bytes.length).toBe(8 + n + 7);
  });

  it('calls lazy data functions one tensor at a time, in order', async () => {
    const calls: string[] = [];
    const lazy = (name: string, value: number): TensorEntry => ({
      name,
      dtype: 'F32',
      shape: [2],
      data: async () => {
        calls.push(name);
        return new Float32Array([value, value]);
      },
    });
    const file = path.join(dir, 'lazy.safetensors');
    await writeSafetensors(file, [lazy('a', 1), lazy('b', 2)]);
    expect(calls).toEqual(['a', 'b']);
    const st = await SafetensorsFile.open(file);
    expect(Array.from((await st.read('b')).data as Float32Array)).toEqual([2, 2]);
    await st.close();
  });

  it('rejects data whose length disagrees with the shape, naming the tensor, and leaves no file behind', async () => {
    const file = path.join(dir, 'bad.safetensors');
    const write = writeSafetensors(file, [
      { name: 'ok', dtype: 'F32', shape: [1], data: new Float32Array([1]) },
      { name: 'model.norm.weight', dtype: 'BF16', shape: [4], data: new Uint16Array(3) },
    ]);
    await expect(write).rejects.toThrow(CheckpointError);
    await expect(write).rejects.toThrow(/bad\.safetensors: tensor 'model\.norm\.weight'.*4 elements, got a Uint16Array of 3/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('rejects data of the wrong array type for the dtype', async () => {
    const file = path.join(dir, 'bad.safetensors');
    await expect(
      writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [2], data: new Float32Array(1) }]),
    ).rejects.toThrow(/tensor 'w' \(BF16 \[2\]\) needs a Uint16Array/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('removes the temp file when a lazy data function throws, and keeps an existing file intact', async () => {
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, [{ name: 'old', dtype: 'U8', shape: [1], data: new Uint8Array([9]) }]);
    const before = await readFile(file);
    const failing = writeSafetensors(file, [
      { name: 'new', dtype: 'U8', shape: [1], data: () => Promise.reject(new Error('source failed')) },
    ]);
    await expect(failing).rejects.toThrow('source failed');
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect(await readFile(file)).toEqual(before);
  });

  it('rejects a tensor name or metadata with a lone surrogate (the reader would reject the file)', async () => {
    const w = (name: string): TensorEntry => ({ name, dtype: 'U8', shape: [1], data: new Uint8Array([1]) });
    const file = path.join(dir, 's.safetensors');
    await expect(writeSafetensors(file, [w('a\ud800')])).rejects.toThrow(/tensor name 'a.' has a lone UTF-16 surrogate/);
    await expect(writeSafetensors(file, [w('a')], { k: '\udc00' })).rejects.toThrow(/metadata entry 'k' is not a string of valid Unicode/);
    await writeSafetensors(file, [w('emoji 😀')], { k: '漢字' });
    const st = await SafetensorsFile.open(file);
    expect(st.tensors().map((t) => t.name)).toEqual(['emoji 😀']);
    await st.close();
  });

  it('rejects duplicate tensor names', async () => {
    const entry: TensorEntry = { name: 'dup', dtype: 'U8', shape: [1], data: new Uint8Array(1) };
    await expect(writeSafetensors(path.join(dir, 'd.safetensors'), [entry, entry])).rejects.toThrow(/tensor name 'dup'/);
  });
});

describe('writeShardedSafetensors', () => {
  const entries = (): TensorEntry[] =>
    ['model.layers.10.w', 'model.layers.2.w', 'lm_head.weight', 'model.norm.weight'].map((name, i) => ({
      name,
      dtype: 'BF16',
      shape: [4, 8],
      data: () => f32ToBf16(Array.from({ length: 32 }, (_, j) => i * 100 + j)),
    }));

  it('splits in order into HF-named shards with a sorted index, and reads back through Checkpoint', async () => {
    const written = await writeShardedSafetensors(dir, entries(), { maxShardBytes: 130, metadata: { format: 'pt' } });
    expect(written).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata).toEqual({ total_size: 4 * 64 });
    expect(Object.entries(index.weight_map)).toEqual([
      ['lm_head.weight', 'model-00002-of-00002.safetensors'],
      ['model.layers.10.w', 'model-00001-of-00002.safetensors'],
      ['model.layers.2.w', 'model-00001-of-00002.safetensors'],
      ['model.norm.weight', 'model-00002-of-00002.safetensors'],
    ]);
    const ckpt = await Checkpoint.open(dir);
    try {
      expect(ckpt.names().sort()).toEqual(Object.keys(index.weight_map));
      for (const [i, e] of entries().entries()) {
        const t = await ckpt.read(e.name);
        expect(t).toEqual({ dtype: 'BF16', shape: [4, 8], data: await (e.data as () => Uint16Array)() });
        expect(ckpt.info(e.name).file).toBe(path.join(dir, i < 2 ? written[0]! : written[1]!));
      }
    } finally {
      await ckpt.close();
    }
  });

  it('writes only model.safetensors when everything fits in one shard', async () => {
    const written = await writeShardedSafetensors(dir, entries(), { maxShardBytes: 1e9 });
    expect(written).toEqual(['model.safetensors']);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    const ckpt = await Checkpoint.open(dir);
    expect(ckpt.names()).toHaveLength(4);
    await ckpt.close();
  });

  it('gives a tensor larger than maxShardBytes a shard of its own', async () => {
    const written = await writeShardedSafetensors(dir, entries(), { maxShardBytes: 10 });
    expect(written).toHaveLength(5);
    expect(written[3]).toBe('model-00004-of-00004.safetensors');
  });
});

describe('ShardedSafetensorsWriter', () => {
  const tensor = (name: string): TensorEntry => ({ name, dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) });

  it('writes shards one at a time, then an index that reads back through Checkpoint', async () => {
    const writer = new ShardedSafetensorsWriter(dir, 2, { format: 'pt' });
    expect(await writer.writeShard([tensor('b'), tensor('a')])).toBe('model-00001-of-00002.safetensors');
    expect(await writer.writeShard([tensor('c')])).toBe('model-00002-of-00002.safetensors');
    expect(await writer.finish()).toBe('model.safetensors.index.json');
    const index = JSON.parse(await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index).toEqual({
      metadata: { total_size: 24 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
    });
    const ckpt = await Checkpoint.open(dir);
    expect(ckpt.names().sort()).toEqual(['a', 'b', 'c']);
    await ckpt.close();
  });

  it('refuses an index before every shard is written, and a shard past the count', async () => {
    const writer = new ShardedSafetensorsWriter(dir, 2);
    await writer.writeShard([tensor('a')]);
    await expect(writer.finish()).rejects.toThrow(/1 of 2 shards written/);
    expect(await readdir(dir)).toEqual(['model-00001-of-00002.safetensors']);
    await writer.writeShard([tensor('b')]);
    await expect(writer.writeShard([tensor('c')])).rejects.toThrow(/all 2 shards are written already/);
  });
});
