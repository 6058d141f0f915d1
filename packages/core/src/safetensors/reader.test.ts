import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointError } from '../errors.js';
import { Checkpoint, SafetensorsFile } from './reader.js';
import { writeSafetensors, writeShardedSafetensors, type TensorEntry } from './writer.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-st-reader-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file with a hand-written header (for malformed cases). */
async function rawFile(name: string, header: unknown, dataBytes: number): Promise<string> {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(dir, name);
  await writeFile(file, Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]));
  return file;
}

/** Expects `promise` to reject with a CheckpointError whose message matches every pattern. */
async function expectCheckpointError(promise: Promise<unknown>, ...patterns: (string | RegExp)[]): Promise<CheckpointError> {
  const error = await promise.then(
    () => expect.fail('expected a CheckpointError'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CheckpointError);
  for (const p of patterns) expect((error as Error).message).toMatch(p);
  return error as CheckpointError;
}

const twoTensors: TensorEntry[] = [
  { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
  { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [2, 3], data: new Uint16Array([1, 2, 3, 4, 5, 6]) },
];

describe('SafetensorsFile errors', () => {
  it('missing file', async () => {
    const file = path.join(dir, 'nope.safetensors');
    await expectCheckpointError(SafetensorsFile.open(file), `${file}: file not found`);
  });

  it('file shorter than 8 bytes', async () => {
    const file = path.join(dir, 'tiny.safetensors');
    await writeFile(file, Buffer.from([1, 2, 3]));
    await expectCheckpointError(SafetensorsFile.open(file), file, /3 bytes, shorter than the 8-byte header length/);
  });

  it('truncated file (last bytes cut off)', async () => {
    const file = path.join(dir, 'cut.safetensors');
    await writeSafetensors(file, twoTensors);
    const size = (await readFile(file)).length;
    await truncate(file, size - 3);
    const e = await expectCheckpointError(SafetensorsFile.open(file), file, "tensor 'model.embed_tokens.weight'", /truncated/);
    expect(e.tensor).toBe('model.embed_tokens.weight');
    expect(e.file).toBe(file);
  });

  it('file truncated after open: read() says truncated', async () => {
    const file = path.join(dir, 'shrunk.safetensors');
    await writeSafetensors(file, twoTensors);
    const st = await SafetensorsFile.open(file);
    try {
      await truncate(file, (await readFile(file)).length - 3);
      expect(Array.from((await st.read('a')).data as Float32Array)).toEqual([1, 2]);
      await expectCheckpointError(st.read('model.embed_tokens.weight'), file, "tensor 'model.embed_tokens.weight' is truncated");
    } finally {
      await st.close();
    }
  });

  it('header length past the end of the file (2^40), without allocating it', async () => {
    const file = path.join(dir, 'huge.safetensors');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(2n ** 40n);
    await writeFile(file, prefix);
    await expectCheckpointError(SafetensorsFile.open(file), file, /header length 1099511627776 runs past the end of the file \(8 bytes\)/);
  });

  it('header that is not JSON or does not start with {', async () => {
    const notJson = await rawFile('a.safetensors', '{"a": ', 0);
    await expectCheckpointError(SafetensorsFile.open(notJson), notJson, /not valid JSON/);
    const array = await rawFile('b.safetensors', '[1, 2]', 0);
    await expectCheckpointError(SafetensorsFile.open(array), array, /does not start with '\{'/);
  });

  it('data_offsets that overrun the data buffer', async () => {
    const file = await rawFile('overrun.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, 16);
    await expectCheckpointError(SafetensorsFile.open(file), file, "tensor 'w'", /run past the end of the data \(16 bytes\).*truncated/);
  });

  it('overlapping tensors', async () => {
    const header = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    };
    const file = await rawFile('overlap.safetensors', header, 12);
    await expectCheckpointError(SafetensorsFile.open(file), file, /tensors 'a' \[0, 8\] and 'b' \[4, 12\] overlap/);
  });

  it('unknown dtype', async () => {
    const file = await rawFile('f8.safetensors', { w: { dtype: 'F8_XYZ', shape: [2], data_offsets: [0, 2] } }, 2);
    await expectCheckpointError(SafetensorsFile.open(file), file, /tensor 'w' has unknown dtype 'F8_XYZ'/);
  });

  it('data_offsets length that disagrees with shape and dtype', async () => {
    const file = await rawFile('len.safetensors', { w: { dtype: 'BF16', shape: [3], data_offsets: [0, 4] } }, 4);
    await expectCheckpointError(SafetensorsFile.open(file), file, /tensor 'w'.*span 4 bytes, but BF16 shape \[3\] needs 6/);
  });

  it('shape that is not non-negative integers', async () => {
    const file = await rawFile('shape.safetensors', { w: { dtype: 'U8', shape: [2, -1], data_offsets: [0, 0] } }, 0);
    await expectCheckpointError(SafetensorsFile.open(file), file, /tensor 'w': shape \[2,-1\]/);
  });

  it('duplicate tensor names', async () => {
    const entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
    const file = await rawFile('dup.safetensors', `{"w":${entry},"w":${entry}}`, 1);
    await expectCheckpointError(SafetensorsFile.open(file), file, /tensor 'w' appears twice/);
  });

  it('missing tensor', async () => {
    const file = path.join(dir, 'ok.safetensors');
    await writeSafetensors(file, twoTensors);
    const st = await SafetensorsFile.open(file);
    try {
      expect(() => st.info('nope')).toThrow(`${file}: tensor 'nope' not found`);
      await expectCheckpointError(st.read('nope'), `${file}: tensor 'nope' not found`);
    } finally {
      await st.close();
    }
  });
});

/** A file with a hand-written header and explicit data bytes (`headerLength` overrides the true length). */
async function bytesFile(name: string, header: string, data: Uint8Array | number, headerLength?: bigint): Promise<string> {
  const json = Buffer.from(header, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  const file = path.join(dir, name);
  await writeFile(file, Buffer.concat([prefix, json, typeof data === 'number' ? Buffer.alloc(data) : data]));
  return file;
}

/** Opens and closes `file`, which must be accepted. */
async function expectAccepted(file: string): Promise<void> {
  const st = await SafetensorsFile.open(file);
  await st.close();
}

describe('SafetensorsFile: the exact safetensors layout (as the Rust reference implementation)', () => {
  const u8 = (name: string, begin: number, end: number) => `"${name}":{"dtype":"U8","shape":[${end - begin}],"data_offsets":[${begin},${end}]}`;

  it('header length off by one (data shifted by a byte)', async () => {
    const good = path.join(dir, 'good.safetensors');
    await writeSafetensors(good, [
      { name: 'a', dtype: 'U8', shape: [4], data: new Uint8Array([0x20, 1, 2, 3]) },
      { name: 'b', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    ]);
    await expectAccepted(good);
    const bytes = await readFile(good);
    const n = bytes.readBigUInt64LE(0);
    for (const delta of [-1n, 1n]) {
      const file = path.join(dir, `shift${delta}.safetensors`);
      const copy = Buffer.from(bytes);
      copy.writeBigUInt64LE(n + delta);
      await writeFile(file, copy);
      const e = await expectCheckpointError(SafetensorsFile.open(file), file);
      expect(e.file).toBe(file);
    }
  });

  it('a gap in the data buffer between two tensors', async () => {
    const file = await bytesFile('gap.safetensors', `{${u8('a', 0, 4)},${u8('b', 8, 12)}}`, 12);
    const e = await expectCheckpointError(SafetensorsFile.open(file), file, "'a'", "'b'", /bytes \[4, 8\) of the data belong to no tensor/);
    expect(e.tensor).toBe('b');
  });

  it('a gap before the first tensor', async () => {
    const file = await bytesFile('gap0.safetensors', `{${u8('a', 4, 8)}}`, 8);
    await expectCheckpointError(SafetensorsFile.open(file), file, "tensor 'a'", /bytes \[0, 4\) of the data belong to no tensor/);
  });

  it('trailing bytes after the last tensor', async () => {
    const file = path.join(dir, 'trailing.safetensors');
    await writeSafetensors(file, twoTensors);
    await writeFile(file, Buffer.concat([await readFile(file), Buffer.from([0, 0, 0])]));
    const e = await expectCheckpointError(
      SafetensorsFile.open(file),
      file,
      /3 bytes after the end of tensor 'model\.embed_tokens\.weight' belong to no tensor/,
    );
    expect(e.tensor).toBe('model.embed_tokens.weight');
  });

  it('offsets counted from the start of the file instead of the data buffer', async () => {
    const header = (base: number) => `{${u8('a', base, base + 4)},${u8('b', base + 4, base + 8)}}`;
    const n = Buffer.byteLength(header(100));
    const file = await bytesFile('absolute.safetensors', header(8 + n), 8);
    await expectCheckpointError(SafetensorsFile.open(file), file, /tensor '[ab]'/, /counted from the start of the file/);
  });

  it('a duplicate key inside one tensor entry', async () => {
    const file = await bytesFile('dupkey.safetensors', '{"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1);
    await expectCheckpointError(SafetensorsFile.open(file), file, "tensor 'w'", /'dtype' appears twice/);
    const meta = await bytesFile('dupmeta.safetensors', '{"__metadata__":{"k":"a","k":"b"}}', 0);
    await expectCheckpointError(SafetensorsFile.open(meta), meta, /__metadata__.*'k' appears twice/);
  });

  it('a byte order mark or whitespace before the header', async () => {
    const bom = await bytesFile('bom.safetensors', `\uFEFF{${u8('a', 0, 1)}}`, 1);
    await expectCheckpointError(SafetensorsFile.open(bom), bom, /does not start with '\{'.*byte order mark/);
    const space = await bytesFile('space.safetensors', ` {${u8('a', 0, 1)}}`, 1);
    await expectCheckpointError(SafetensorsFile.open(space), space, /does not start with '\{'/);
  });

  it('an empty header followed by data bytes', async () => {
    const file = await bytesFile('empty.safetensors', '{}', 8);
    await expectCheckpointError(SafetensorsFile.open(file), file, /lists no tensors, but 8 bytes of data follow it/);
    await expectAccepted(await bytesFile('empty-ok.safetensors', '{"__metadata__":{"format":"pt"}}  ', 0));
  });

  it('unknown or missing fields in a tensor entry', async () => {
    const extra = await bytesFile('extra.safetensors', '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"offsets":[0,1]}}', 1);
    await expectCheckpointError(SafetensorsFile.open(extra), extra, "tensor 'w'", /unknown field 'offsets'/);
    const missing = await bytesFile('missing.safetensors', '{"w":{"dtype":"U8","data_offsets":[0,1]}}', 1);
    await expectCheckpointError(SafetensorsFile.open(missing), missing, "tensor 'w'", /lacks 'shape'/);
  });

  it('numbers that JSON.parse reads as integers but are not integer literals (1.0, 1e0, -0)', async () => {
    for (const [i, offsets] of ['[0,1.0]', '[0,1e0]', '[-0,1]'].entries()) {
      const file = await bytesFile(`num${i}.safetensors`, `{"w":{"dtype":"U8","shape":[1],"data_offsets":${offsets}}}`, 1);
      await expectCheckpointError(SafetensorsFile.open(file), file, "tensor 'w'", /is not a non-negative integer/);
    }
    const shape = await bytesFile('shape-float.safetensors', '{"w":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}', 2);
    await expectCheckpointError(SafetensorsFile.open(shape), shape, "tensor 'w'", /2\.0 is not a non-negative integer/);
  });

  it('a shape whose element count overflows before a zero dimension (the Rust reader checks every product)', async () => {
    const file = await bytesFile('overflow.safetensors', '{"w":{"dtype":"U8","shape":[1125899906842624,1125899906842624,0],"data_offsets":[0,0]}}', 0);
    await expectCheckpointError(SafetensorsFile.open(file), file, "tensor 'w'", /overflows/);
  });

  it('a deeply nested shape is a CheckpointError, not a stack overflow', async () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const file = await bytesFile('deep.safetensors', `{"w":{"dtype":"U8","shape":${deep},"data_offsets":[0,1]}}`, 1);
    await expectCheckpointError(SafetensorsFile.open(file), file, "tensor 'w'", /shape/);
  });

  it('a tensor name with a lone surrogate escape (not Unicode; the Rust reader rejects it)', async () => {
    const file = await bytesFile('surrogate.safetensors', `{${u8('a\\ud800', 0, 1)}}`, 1);
    await expectCheckpointError(SafetensorsFile.open(file), file, /not valid Unicode/);
  });

  it('accepts what the format allows: trailing whitespace, any entry order, empty and 0-rank tensors', async () => {
    const header = `{"z":{"dtype":"U8","shape":[0],"data_offsets":[4,4]},${u8('b', 4, 6)},${u8('a', 0, 4)},` +
      `"s":{"dtype":"U8","shape":[],"data_offsets":[6,7]},"e":{"dtype":"F32","shape":[3,0],"data_offsets":[7,7]}} \n\t `;
    const file = await bytesFile('ok.safetensors', header, new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
    const st = await SafetensorsFile.open(file);
    try {
      expect(st.tensors().map((t) => t.name)).toEqual(['z', 'b', 'a', 's', 'e']);
      expect(Array.from((await st.read('b')).data as Uint8Array)).toEqual([5, 6]);
      expect(Array.from((await st.read('s')).data as Uint8Array)).toEqual([7]);
    } finally {
      await st.close();
    }
  });
});

describe('Checkpoint', () => {
  it('opens a single file path, a folder with model.safetensors, and reports a missing tensor', async () => {
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, twoTensors);
    for (const p of [file, dir]) {
      const ckpt = await Checkpoint.open(p);
      try {
        expect(ckpt.names()).toEqual(['a', 'model.embed_tokens.weight']);
        expect(ckpt.has('a')).toBe(true);
        expect(ckpt.info('a')).toEqual({ name: 'a', dtype: 'F32', shape: [2], file });
        expect(() => ckpt.info('lm_head.weight')).toThrow(`tensor 'lm_head.weight' not found in ${p}`);
        await expectCheckpointError(ckpt.read('lm_head.weight'), `tensor 'lm_head.weight' not found in ${p}`);
      } finally {
        await ckpt.close();
      }
    }
  });

  it('folder without checkpoint files', async () => {
    await expectCheckpointError(Checkpoint.open(dir), `no model.safetensors or model.safetensors.index.json in ${dir}`);
  });

  it('missing shard listed in the index', async () => {
    await writeShardedSafetensors(dir, twoTensors, { maxShardBytes: 8 });
    await rm(path.join(dir, 'model-00002-of-00002.safetensors'));
    const index = path.join(dir, 'model.safetensors.index.json');
    await expectCheckpointError(Checkpoint.open(dir), index, /shard 'model-00002-of-00002\.safetensors' listed in weight_map is missing/);
  });

  it('tensor in weight_map that its shard lacks', async () => {
    await writeShardedSafetensors(dir, twoTensors, { maxShardBytes: 8 });
    const index = path.join(dir, 'model.safetensors.index.json');
    const json = JSON.parse(await readFile(index, 'utf8'));
    json.weight_map.ghost = 'model-00001-of-00002.safetensors';
    await writeFile(index, JSON.stringify(json));
    await expectCheckpointError(Checkpoint.open(dir), index, /tensor 'ghost' in shard 'model-00001-of-00002\.safetensors', but that shard lacks it/);
  });

  it('malformed index JSON', async () => {
    const index = path.join(dir, 'model.safetensors.index.json');
    await writeFile(index, '{"weight_map": ');
    await expectCheckpointError(Checkpoint.open(dir), index, /not a valid index JSON/);
    await writeFile(index, '{"metadata": {}}');
    await expectCheckpointError(Checkpoint.open(dir), index, /'weight_map' must be an object/);
  });

  it('tensor present in two shards', async () => {
    const shard = (n: number) => `model-0000${n}-of-00002.safetensors`;
    await writeSafetensors(path.join(dir, shard(1)), twoTensors);
    await writeSafetensors(path.join(dir, shard(2)), [twoTensors[0]!]);
    const weightMap = { a: shard(2), 'model.embed_tokens.weight': shard(1) };
    await writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    await expectCheckpointError(Checkpoint.open(dir), /tensor 'a' is in both/, shard(1), shard(2));
  });
});

/** The monorepo root: the nearest ancestor of this file with a pnpm-workspace.yaml. */
function repoRoot(): string {
  let d = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(d, 'pnpm-workspace.yaml'))) {
    const up = path.dirname(d);
    if (up === d) throw new Error('pnpm-workspace.yaml not found above the test file');
    d = up;
  }
  return d;
}

// The golden checkpoints ship inside @qllm/testing (a fixture path: core cannot depend on that package).
const vectors = path.resolve(repoRoot(), 'packages/testing/vectors');

describe('golden Qwen3 checkpoints (packages/testing/vectors)', () => {
  for (const name of ['golden-a', 'golden-b']) {
    it(`${name}: every tensor reads as BF16 with shapes from config.json`, async () => {
      const folder = path.join(vectors, 'qwen3-golden', name);
      const config = JSON.parse(await readFile(path.join(folder, 'config.json'), 'utf8'));
      const { hidden_size: h, intermediate_size: im, vocab_size: v, head_dim: hd } = config;
      const q = config.num_attention_heads * hd;
      const kv = config.num_key_value_heads * hd;
      const expected: Record<string, number[]> = {
        'model.embed_tokens.weight': [v, h],
        'model.norm.weight': [h],
        ...(config.tie_word_embeddings ? {} : { 'lm_head.weight': [v, h] }),
      };
      for (let l = 0; l < config.num_hidden_layers; l++) {
        const p = `model.layers.${l}.`;
        Object.assign(expected, {
          [`${p}input_layernorm.weight`]: [h],
          [`${p}post_attention_layernorm.weight`]: [h],
          [`${p}self_attn.q_proj.weight`]: [q, h],
          [`${p}self_attn.k_proj.weight`]: [kv, h],
          [`${p}self_attn.v_proj.weight`]: [kv, h],
          [`${p}self_attn.o_proj.weight`]: [h, q],
          [`${p}self_attn.q_norm.weight`]: [hd],
          [`${p}self_attn.k_norm.weight`]: [hd],
          [`${p}mlp.gate_proj.weight`]: [im, h],
          [`${p}mlp.up_proj.weight`]: [im, h],
          [`${p}mlp.down_proj.weight`]: [h, im],
        });
      }
      const ckpt = await Checkpoint.open(folder);
      try {
        expect(ckpt.names().sort()).toEqual(Object.keys(expected).sort());
        for (const tensor of ckpt.names()) {
          const t = await ckpt.read(tensor);
          expect(t.dtype, tensor).toBe('BF16');
          expect(t.shape, tensor).toEqual(expected[tensor]);
          expect(t.data).toBeInstanceOf(Uint16Array);
          expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
        }
      } finally {
        await ckpt.close();
      }
    });
  }
});
