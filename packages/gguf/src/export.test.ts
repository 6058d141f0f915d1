/** exportGguf on generated tiny Qwen3 folders, read back with @huggingface/gguf and decoded byte by byte. */
import os from 'node:os';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gguf, GGMLQuantizationType, GGUFValueType } from '@huggingface/gguf';
import { bf16ToF32, Checkpoint, f16ToF32, f32ToBf16, f32ToF16, loadModelFolder, writeSafetensors, type ModelFolder } from '@qllm/core';
import { makeTinyQwen3 } from '@qllm/testing';
import { exportGguf, type GgufExportType } from './export.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-gguf-export-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const VOCAB = 151936;
const HIDDEN = 64;
const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 32; // heads · head_dim = 128 ≠ hidden

const LAYER = (ffn: number) =>
  [
    ['attn_norm.weight', [HIDDEN], 'norm'],
    ['attn_q.weight', [HIDDEN, HEADS * HEAD_DIM], 'matrix'],
    ['attn_k.weight', [HIDDEN, KV_HEADS * HEAD_DIM], 'matrix'],
    ['attn_v.weight', [HIDDEN, KV_HEADS * HEAD_DIM], 'matrix'],
    ['attn_output.weight', [HEADS * HEAD_DIM, HIDDEN], 'matrix'],
    ['attn_q_norm.weight', [HEAD_DIM], 'norm'],
    ['attn_k_norm.weight', [HEAD_DIM], 'norm'],
    ['ffn_norm.weight', [HIDDEN], 'norm'],
    ['ffn_gate.weight', [HIDDEN, ffn], 'matrix'],
    ['ffn_up.weight', [HIDDEN, ffn], 'matrix'],
    ['ffn_down.weight', [ffn, HIDDEN], 'matrix'],
  ] as const;

/** The tensors llama.cpp's qwen3 loader expects, in file order: [name, ggml dims, kind]. */
function expectedTensors(layers: number, ffn: number, tied: boolean): [string, number[], 'norm' | 'matrix'][] {
  const out: [string, number[], 'norm' | 'matrix'][] = [['token_embd.weight', [HIDDEN, VOCAB], 'matrix']];
  for (let l = 0; l < layers; l++) for (const [n, d, k] of LAYER(ffn)) out.push([`blk.${l}.${n}`, [...d], k]);
  out.push(['output_norm.weight', [HIDDEN], 'norm']);
  if (!tied) out.push(['output.weight', [HIDDEN, VOCAB], 'matrix']);
  return out;
}

/** GGUF name → the Hugging Face tensor it came from. */
function hfName(name: string): string {
  const global: Record<string, string> = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output_norm.weight': 'model.norm.weight',
    'output.weight': 'lm_head.weight',
  };
  if (global[name]) return global[name];
  const layer: Record<string, string> = {
    attn_norm: 'input_layernorm', attn_q: 'self_attn.q_proj', attn_k: 'self_attn.k_proj', attn_v: 'self_attn.v_proj',
    attn_output: 'self_attn.o_proj', attn_q_norm: 'self_attn.q_norm', attn_k_norm: 'self_attn.k_norm',
    ffn_norm: 'post_attention_layernorm', ffn_gate: 'mlp.gate_proj', ffn_up: 'mlp.up_proj', ffn_down: 'mlp.down_proj',
  };
  const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(name)!;
  return `model.layers.${m[1]}.${layer[m[2]!]}.weight`;
}

const GGML = { F32: GGMLQuantizationType.F32, F16: GGMLQuantizationType.F16, Q8_0: GGMLQuantizationType.Q8_0 };

const VARIANTS = [
  // A tied checkpoint that still carries lm_head.weight (as Qwen3-0.6B does): output.weight is left out.
  { label: 'tied head, one file', tied: true, writeTiedLmHead: true, shards: 1, layers: 2, ffn: 160, configStyle: 'transformers-4.51' as const },
  // ffn 80: ffn_down's rows (80 values) are not whole Q8_0 blocks, so a Q8_0 file keeps it F16.
  { label: 'untied head, 3 shards, transformers-5 config', tied: false, writeTiedLmHead: false, shards: 3, layers: 3, ffn: 80, configStyle: 'transformers-5' as const },
];

describe.each(VARIANTS)('$label', ({ tied, writeTiedLmHead, shards, layers, ffn, configStyle }) => {
  let dir: string;
  let folder: ModelFolder;
  let tokenizerJson: { model: { merges: [string, string][] }; added_tokens: { id: number; content: string; special: boolean }[] };
  beforeAll(async () => {
    dir = path.join(root, `tiny-${tied}-${shards}`);
    await makeTinyQwen3(dir, {
      seed: 5, tieWordEmbeddings: tied, writeTiedLmHead, shards, numLayers: layers, intermediateSize: ffn, configStyle,
      hiddenSize: HIDDEN, numHeads: HEADS, numKvHeads: KV_HEADS, headDim: HEAD_DIM,
    });
    folder = await loadModelFolder(dir);
    tokenizerJson = JSON.parse(await fs.readFile(path.join(dir, 'tokenizer.json'), 'utf8'));
  });
  afterAll(async () => {
    await folder?.checkpoint.close();
  });

  describe.each(['f16', 'q8_0'] as GgufExportType[])('%s', (type) => {
    let file: string;
    let parsed: Awaited<ReturnType<typeof parse>>;
    let warnings: string[];
    const parse = (f: string) => gguf(f, { allowLocalFile: true, typedMetadata: true });
    beforeAll(async () => {
      file = path.join(root, `tiny-${tied}-${shards}-${type}.gguf`);
      ({ warnings } = await exportGguf({ model: dir, output: file, type }));
      parsed = await parse(file);
    });

    it('writes the qwen3 hyperparameters and general.* with the types llama.cpp reads', () => {
      const meta = parsed.typedMetadata;
      const expected: Record<string, [GGUFValueType, unknown]> = {
        'general.architecture': [GGUFValueType.STRING, 'qwen3'],
        'general.type': [GGUFValueType.STRING, 'model'],
        'general.name': [GGUFValueType.STRING, path.basename(dir)],
        'general.file_type': [GGUFValueType.UINT32, type === 'f16' ? 1 : 7],
        'general.quantization_version': [GGUFValueType.UINT32, 2],
        'qwen3.block_count': [GGUFValueType.UINT32, layers],
        'qwen3.context_length': [GGUFValueType.UINT32, 40960],
        'qwen3.embedding_length': [GGUFValueType.UINT32, HIDDEN],
        'qwen3.feed_forward_length': [GGUFValueType.UINT32, ffn],
        'qwen3.attention.head_count': [GGUFValueType.UINT32, HEADS],
        'qwen3.attention.head_count_kv': [GGUFValueType.UINT32, KV_HEADS],
        'qwen3.attention.key_length': [GGUFValueType.UINT32, HEAD_DIM],
        'qwen3.attention.value_length': [GGUFValueType.UINT32, HEAD_DIM],
        'qwen3.rope.freq_base': [GGUFValueType.FLOAT32, 1e6],
        'qwen3.attention.layer_norm_rms_epsilon': [GGUFValueType.FLOAT32, Math.fround(1e-6)],
        'tokenizer.ggml.model': [GGUFValueType.STRING, 'gpt2'],
        'tokenizer.ggml.pre': [GGUFValueType.STRING, 'qwen2'],
        'tokenizer.ggml.bos_token_id': [GGUFValueType.UINT32, 151643],
        'tokenizer.ggml.eos_token_id': [GGUFValueType.UINT32, 151645],
        'tokenizer.ggml.padding_token_id': [GGUFValueType.UINT32, 151643],
        'tokenizer.ggml.add_bos_token': [GGUFValueType.BOOL, false],
        'tokenizer.chat_template': [GGUFValueType.STRING, folder.tokenizer!.chatTemplate],
      };
      const arrays = ['tokenizer.ggml.tokens', 'tokenizer.ggml.token_type', 'tokenizer.ggml.merges'];
      const header = ['version', 'tensor_count', 'kv_count'];
      expect(Object.keys(meta).filter((k) => !header.includes(k)).sort()).toEqual([...Object.keys(expected), ...arrays].sort());
      for (const [key, [t, value]] of Object.entries(expected)) {
        expect(meta[key]!.type, key).toBe(t);
        expect(meta[key]!.value, key).toEqual(value);
      }
      expect(meta.version!.value).toBe(3);
      expect(meta.kv_count!.value).toBe(BigInt(Object.keys(expected).length + arrays.length));
    });

    it('writes the tokenizer: one token and type per embedding row, the merges', () => {
      const meta = parsed.typedMetadata;
      const tok = folder.tokenizer!;
      const tokens = meta['tokenizer.ggml.tokens']!;
      const types = meta['tokenizer.ggml.token_type']!;
      expect([tokens.subType, types.subType]).toEqual([GGUFValueType.STRING, GGUFValueType.INT32]);
      const list = tokens.value as string[];
      const kinds = types.value as number[];
      expect(list).toHaveLength(VOCAB);
      expect(kinds).toHaveLength(VOCAB);
      const added = new Map(tokenizerJson.added_tokens.map((t) => [t.id, t]));
      for (let id = 0; id < VOCAB; id++) {
        if (id >= tok.vocabSize) {
          expect([list[id], kinds[id]]).toEqual([`[PAD${id}]`, 5]); // UNUSED
          continue;
        }
        expect(list[id]).toBe(tok.idToToken(id));
        const a = added.get(id);
        // NORMAL, CONTROL (special, or looks like <|...|>), USER_DEFINED (<think>, <tool_call>, ...)
        const want = !a ? 1 : a.special || /^<\|.*\|>$/.test(a.content) ? 3 : 4;
        if (kinds[id] !== want) expect(`${id} ${list[id]}: ${kinds[id]}`).toBe(`${id} ${list[id]}: ${want}`);
      }
      expect(list.slice(151643, 151646)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
      expect([kinds[151667], list[151667]]).toEqual([4, '<think>']);
      expect(meta['tokenizer.ggml.merges']!.value).toEqual(tokenizerJson.model.merges.map((m) => m.join(' ')));
    });

    it('names, shapes and types every tensor as llama.cpp expects, aligned and contiguous', async () => {
      const want = expectedTensors(layers, ffn, tied);
      const got = parsed.tensorInfos;
      expect(got.map((t) => t.name)).toEqual(want.map(([n]) => n));
      for (const [i, [name, dims, kind]] of want.entries()) {
        const t = got[i]!;
        expect(t.shape.map(Number), name).toEqual(dims);
        const q8 = type === 'q8_0' && dims[0]! % 32 === 0;
        expect(t.dtype, name).toBe(kind === 'norm' ? GGML.F32 : q8 ? GGML.Q8_0 : GGML.F16);
      }
      expect(warnings).toEqual(type === 'q8_0' && ffn % 32 !== 0 ? Array.from({ length: layers }, (_, l) => expect.stringMatching(`^blk\\.${l}\\.ffn_down\\.weight: rows of ${ffn} values`)) : []);
      // Offsets: each tensor starts at the previous one's end rounded up to 32 bytes; the file ends padded.
      let offset = 0n;
      for (const t of got) {
        expect(t.offset, t.name).toBe(offset);
        offset += (BigInt(byteSize(t.dtype, t.shape.map(Number))) + 31n) / 32n * 32n;
      }
      expect(parsed.tensorDataOffset % 32n).toBe(0n);
      expect(BigInt((await fs.stat(file)).size)).toBe(parsed.tensorDataOffset + offset);
    });

    it('holds the source values: F32 and F16 exactly, Q8_0 within half a step of each block scale', async () => {
      const handle = await fs.open(file, 'r');
      try {
        for (const t of parsed.tensorInfos) {
          const dims = t.shape.map(Number);
          const bytes = Buffer.alloc(byteSize(t.dtype, dims));
          await handle.read(bytes, 0, bytes.length, Number(parsed.tensorDataOffset + t.offset));
          const src = await folder.checkpoint.read(hfName(t.name));
          expect(src.dtype).toBe('BF16');
          const x = bf16ToF32(src.data as Uint16Array);
          if (t.dtype === GGML.F32) {
            expect(new Float32Array(bytes.buffer, bytes.byteOffset, x.length), t.name).toEqual(x);
          } else if (t.dtype === GGML.F16) {
            const h = new Uint16Array(bytes.buffer, bytes.byteOffset, x.length);
            expect(Buffer.from(h.buffer, h.byteOffset, h.byteLength).equals(Buffer.from(f32ToF16(x).buffer)), t.name).toBe(true);
          } else {
            checkQ8_0(t.name, bytes, x);
          }
        }
      } finally {
        await handle.close();
      }
    });
  });
});

function byteSize(dtype: GGMLQuantizationType, dims: number[]): number {
  const n = dims.reduce((a, b) => a * b, 1);
  return dtype === GGML.F32 ? 4 * n : dtype === GGML.F16 ? 2 * n : (n / 32) * 34;
}

/**
 * Each 34-byte block is an f16 scale d then 32 int8 q: d = max|x| / 127 to f16's precision, |q| = 127 somewhere in a
 * non-zero block, and |d·q − x| ≤ (max|x| / 127) / 2 plus what rounding d to f16 adds (≤ 127·|Δd|).
 */
function checkQ8_0(name: string, bytes: Buffer, x: Float32Array): void {
  const blocks = x.length / 32;
  expect(bytes.length, name).toBe(blocks * 34);
  const scales = f16ToF32(new Uint16Array(Array.from({ length: blocks }, (_, b) => bytes.readUInt16LE(b * 34))));
  const problems: string[] = [];
  for (let b = 0; b < blocks && problems.length < 5; b++) {
    const d = scales[b]!;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
    const exact = amax / 127;
    if (Math.abs(d - exact) > exact * 2 ** -11) problems.push(`block ${b}: scale ${d}, max|x|/127 = ${exact}`);
    const bound = exact / 2 + 127 * Math.abs(d - exact) + 1e-7 * amax;
    let top = 0;
    for (let j = 0; j < 32; j++) {
      const q = bytes.readInt8(b * 34 + 2 + j);
      top = Math.max(top, Math.abs(q));
      const v = x[b * 32 + j]!;
      if (Math.abs(d * q - v) > bound) problems.push(`block ${b}[${j}]: |${d}·${q} − ${v}| > ${bound}`);
    }
    if (amax > 0 && top !== 127) problems.push(`block ${b}: largest |q| is ${top}, not 127`);
  }
  expect(problems, name).toEqual([]);
}

describe('errors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(root, 'errors-src');
    await makeTinyQwen3(dir, { seed: 6, numLayers: 1, hiddenSize: HIDDEN, numHeads: HEADS, numKvHeads: KV_HEADS, headDim: HEAD_DIM });
  });

  const copyModel = async (name: string) => {
    const to = path.join(root, name);
    await fs.cp(dir, to, { recursive: true });
    return to;
  };
  const leftovers = async (folder: string) => (await fs.readdir(folder)).filter((f) => f.includes('.partial-'));

  it('refuses a quantized folder, saying to export the float folder instead', async () => {
    const q = await copyModel('quantized');
    const config = JSON.parse(await fs.readFile(path.join(q, 'config.json'), 'utf8'));
    config.quantization_config = { quant_method: 'compressed-tensors', format: 'int-quantized' };
    await fs.writeFile(path.join(q, 'config.json'), JSON.stringify(config));
    await expect(exportGguf({ model: q, output: path.join(root, 'q.gguf') })).rejects.toThrow(
      /config\.json: this is a quantized checkpoint \(quantization_config: compressed-tensors\).*export the float folder it was quantized from instead/,
    );
    await expect(fs.stat(path.join(root, 'q.gguf'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses an int8 tensor in a folder without quantization_config, naming the tensor', async () => {
    const q = await copyModel('int8-tensor');
    const ckpt = await Checkpoint.open(q);
    const entries = await Promise.all(ckpt.names().map(async (name) => {
      const t = await ckpt.read(name);
      return name === 'model.layers.0.mlp.up_proj.weight'
        ? { name, dtype: 'I8' as const, shape: t.shape, data: new Int8Array(t.data.length) }
        : { name, dtype: t.dtype, shape: t.shape, data: t.data };
    }));
    await ckpt.close();
    await writeSafetensors(path.join(q, 'model.safetensors'), entries);
    await expect(exportGguf({ model: q, output: path.join(root, 'i8.gguf') })).rejects.toThrow(
      /tensor 'model\.layers\.0\.mlp\.up_proj\.weight' is I8, not a float.*export the float folder/,
    );
  });

  it('leaves nothing behind when a tensor fails midway, and names it', async () => {
    const bad = await copyModel('overflow');
    const ckpt = await Checkpoint.open(bad);
    const entries = await Promise.all(ckpt.names().map(async (name) => {
      const t = await ckpt.read(name);
      if (name === 'model.layers.0.mlp.down_proj.weight') (t.data as Uint16Array)[7] = f32ToBf16([1e6])[0]!;
      return { name, dtype: t.dtype, shape: t.shape, data: t.data };
    }));
    await ckpt.close();
    await writeSafetensors(path.join(bad, 'model.safetensors'), entries);
    const out = path.join(root, 'out-overflow');
    await fs.mkdir(out);
    await expect(exportGguf({ model: bad, output: path.join(out, 'x.gguf'), type: 'f16' })).rejects.toThrow(
      /tensor 'model\.layers\.0\.mlp\.down_proj\.weight': value 999424 is outside float16's range/,
    );
    expect(await fs.readdir(out)).toEqual([]);
    // Q8_0 stores the value fine (its block scale is 999424 / 127).
    await exportGguf({ model: bad, output: path.join(out, 'x.gguf'), type: 'q8_0' });
    expect(await fs.readdir(out)).toEqual(['x.gguf']);
  });

  it("refuses a tokenizer whose pre-tokenizer is not Qwen2's (llama.cpp would split text differently)", async () => {
    const m = await copyModel('other-pretokenizer');
    const file = path.join(m, 'tokenizer.json');
    const json = JSON.parse(await fs.readFile(file, 'utf8'));
    json.pre_tokenizer.pretokenizers[0].pattern.Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    await fs.writeFile(file, JSON.stringify(json));
    await expect(exportGguf({ model: m, output: path.join(root, 'p.gguf') })).rejects.toThrow(
      /tokenizer\.json: the pre-tokenizer is not Qwen2\/Qwen3's/,
    );
  });

  it('names a missing tensor', async () => {
    const m = await copyModel('missing');
    const ckpt = await Checkpoint.open(m);
    const entries = await Promise.all(ckpt.names().filter((n) => n !== 'model.layers.0.self_attn.k_norm.weight').map(async (name) => {
      const t = await ckpt.read(name);
      return { name, dtype: t.dtype, shape: t.shape, data: t.data };
    }));
    await ckpt.close();
    await writeSafetensors(path.join(m, 'model.safetensors'), entries);
    await expect(exportGguf({ model: m, output: path.join(root, 'm.gguf') })).rejects.toThrow(
      /tensor 'model\.layers\.0\.self_attn\.k_norm\.weight' is missing \(needed for GGUF 'blk\.0\.attn_k_norm\.weight'\)/,
    );
  });

  it('replaces an existing output only with overwrite', async () => {
    const out = path.join(root, 'out-exists');
    await fs.mkdir(out);
    const file = path.join(out, 'model.gguf');
    await fs.writeFile(file, 'old');
    await expect(exportGguf({ model: dir, output: file })).rejects.toThrow(/model\.gguf: already exists/);
    expect(await fs.readFile(file, 'utf8')).toBe('old');
    await exportGguf({ model: dir, output: file, overwrite: true });
    expect((await fs.readFile(file)).subarray(0, 4).toString()).toBe('GGUF');
    expect(await leftovers(out)).toEqual([]);
  });

  it('does not replace an output that appears while it runs, and removes temporary files of dead processes', async () => {
    const out = path.join(root, 'out-race');
    await fs.mkdir(out);
    const file = path.join(out, 'm.gguf');
    await fs.writeFile(path.join(out, '.m.gguf.partial-999999999-0badf00d'), 'left by a killed export');
    await expect(exportGguf({
      model: dir,
      output: file,
      onProgress: ({ index }) => {
        if (index === 0) writeFileSync(file, 'theirs');
      },
    })).rejects.toThrow(/m\.gguf: cannot finish writing \(it appeared while the export ran; pass overwrite to replace it\)/);
    expect(await fs.readFile(file, 'utf8')).toBe('theirs');
    expect(await fs.readdir(out)).toEqual(['m.gguf']);
  });

  it('needs the output folder to exist', async () => {
    await expect(exportGguf({ model: dir, output: path.join(root, 'no-such-dir', 'x.gguf') })).rejects.toThrow(/does not exist/);
  });
});
