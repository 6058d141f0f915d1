import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goldenDir } from './golden.js';
import { loadRefWeights } from './load-weights.js';
import { topK } from './logprobs.js';
import { Qwen3Reference, refConfigFromHf } from './reference.js';
import { QWEN3_0_6B_SHAPE, makeTinyQwen3, qwen3TokenizerDir } from './tiny-qwen3.js';
import type { TinyQwen3Options } from './tiny-qwen3.js';

const SMALL: TinyQwen3Options = { vocabSize: 2048, tokenizer: false };
const WEIGHT_FILE = /\.safetensors(\.index\.json)?$/;

let root: string;
beforeAll(async () => { root = await mkdtemp(path.join(tmpdir(), 'qllm-tiny-qwen3-')); });
afterAll(async () => { await rm(root, { recursive: true, force: true }); });

let counter = 0;
async function make(options: TinyQwen3Options = {}) {
  return makeTinyQwen3(path.join(root, `m${counter++}`), options);
}
function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}
function fileHashes(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, sha(path.join(dir, f))]));
}
async function reference(dir: string) {
  const raw = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  return new Qwen3Reference(refConfigFromHf(raw), await loadRefWeights(dir));
}
/** Bitwise equality of two float64 arrays (much faster than toEqual on big typed arrays). */
function same(a: Float64Array, b: Float64Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
const prompt = (n: number, vocab: number) => Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab);

describe('makeTinyQwen3', () => {
  it('is deterministic: same seed → byte-identical files; another seed → other weights', async () => {
    const a = await make({ ...SMALL, shards: 2 });
    const b = await make({ ...SMALL, shards: 2 });
    const c = await make({ ...SMALL, shards: 2, seed: 1 });
    expect(fileHashes(a.dir)).toEqual(fileHashes(b.dir));
    const ha = fileHashes(a.dir);
    const hc = fileHashes(c.dir);
    expect(hc['config.json']).toBe(ha['config.json']);
    for (const f of Object.keys(ha).filter((f) => f.endsWith('.safetensors'))) expect(hc[f]).not.toBe(ha[f]);
  });

  it('writes the Qwen3 config.json key set and generation_config.json (transformers 4.51 style)', async () => {
    const { dir, config } = await make(SMALL);
    const goldenConfig = path.join(goldenDir('golden-a'), 'config.json');
    const golden = existsSync(goldenConfig) ? (JSON.parse(readFileSync(goldenConfig, 'utf8')) as Record<string, unknown>) : {};
    const onDisk = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(onDisk).toEqual(config);
    if (Object.keys(golden).length > 0) expect(Object.keys(onDisk).sort()).toEqual(Object.keys(golden).sort());
    expect(onDisk).toMatchObject({
      architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', bos_token_id: 151643, eos_token_id: 151645,
      torch_dtype: 'bfloat16', max_position_embeddings: 40960, attention_bias: false, hidden_act: 'silu',
      hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      head_dim: 32, vocab_size: 2048, rope_theta: 1e6, rms_norm_eps: 1e-6, tie_word_embeddings: true,
      rope_scaling: null, sliding_window: null, use_sliding_window: false,
    });
    expect(JSON.parse(readFileSync(path.join(dir, 'generation_config.json'), 'utf8'))).toMatchObject({
      eos_token_id: [151645, 151643], temperature: 0.6, top_p: 0.95, top_k: 20, do_sample: true,
    });
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
  });

  it('transformers-5 style: dtype and rope_parameters instead of torch_dtype and rope_theta, same model', async () => {
    const v4 = await make(SMALL);
    const v5 = await make({ ...SMALL, configStyle: 'transformers-5', ropeTheta: 1e6 });
    expect(v5.config).toMatchObject({ dtype: 'bfloat16', rope_parameters: { rope_theta: 1e6, rope_type: 'default' }, pad_token_id: null });
    expect(v5.config).not.toHaveProperty('torch_dtype');
    expect(v5.config).not.toHaveProperty('rope_theta');
    expect(v5.config).not.toHaveProperty('rope_scaling');
    expect(v5.config['layer_types']).toEqual(['full_attention', 'full_attention']);
    expect(refConfigFromHf(v5.config)).toEqual(refConfigFromHf(v4.config));
    expect(sha(path.join(v5.dir, 'model.safetensors'))).toBe(sha(path.join(v4.dir, 'model.safetensors')));
  });

  it('shards: exactly N files plus a correct index, holding the same tensors as the single file', async () => {
    const single = await make(SMALL);
    for (const shards of [2, 3, 5]) {
      const { dir } = await make({ ...SMALL, shards });
      const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as {
        metadata: { total_size: number };
        weight_map: Record<string, string>;
      };
      const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
      expect(files).toEqual(Array.from({ length: shards }, (_, i) => `model-0000${i + 1}-of-0000${shards}.safetensors`));
      expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
      expect([...new Set(Object.values(index.weight_map))].sort()).toEqual(files);
      const names = Object.keys(index.weight_map);
      expect(names).toEqual([...names].sort());
      expect(names).toHaveLength(2 + 11 * 2); // embed, norm, 11 per layer; tied: no lm_head
      const a = await loadRefWeights(single.dir);
      const b = await loadRefWeights(dir);
      let bytes = 0;
      for (const n of names) {
        expect(same(b(n), a(n)), n).toBe(true);
        bytes += b(n).length * 2;
      }
      expect(index.metadata.total_size).toBe(bytes);
    }
  });

  it('tied with and without lm_head.weight, and untied', async () => {
    const tied = await make(SMALL);
    const withHead = await make({ ...SMALL, writeTiedLmHead: true });
    const untied = await make({ ...SMALL, tieWordEmbeddings: false });
    const wt = await loadRefWeights(tied.dir);
    const wh = await loadRefWeights(withHead.dir);
    const wu = await loadRefWeights(untied.dir);
    expect(() => wt('lm_head.weight')).toThrow(/lm_head.weight/);
    expect(same(wh('lm_head.weight'), wh('model.embed_tokens.weight'))).toBe(true);
    expect(same(wh('model.embed_tokens.weight'), wt('model.embed_tokens.weight'))).toBe(true);
    expect(same(wu('lm_head.weight'), wu('model.embed_tokens.weight'))).toBe(false);
    expect(untied.config['tie_word_embeddings']).toBe(false);
    const ids = prompt(8, 2048);
    const lt = (await reference(tied.dir)).forward(ids);
    const lh = (await reference(withHead.dir)).forward(ids);
    lh.forEach((row, t) => expect(same(row, lt[t]!)).toBe(true));
    const lu = (await reference(untied.dir)).forward(ids);
    expect(same(lu[7]!, lt[7]!)).toBe(false);
  });

  it('outlierChannels scales those channels of input/post-attention norms only', async () => {
    const base = await make(SMALL);
    const channels = [3, 17, 40];
    const out = await make({ ...SMALL, outlierChannels: { channels, scale: 30 } });
    const wb = await loadRefWeights(base.dir);
    const wo = await loadRefWeights(out.dir);
    for (let l = 0; l < 2; l++) {
      for (const n of ['input_layernorm', 'post_attention_layernorm']) {
        const name = `model.layers.${l}.${n}.weight`;
        const [b, o] = [wb(name), wo(name)];
        for (let i = 0; i < 64; i++) {
          if (channels.includes(i)) expect(Math.abs(o[i]! / b[i]! - 30)).toBeLessThan(30 * 2 ** -7);
          else expect(o[i]).toBe(b[i]);
        }
      }
      for (const n of ['self_attn.q_norm', 'self_attn.k_norm', 'self_attn.q_proj', 'mlp.down_proj']) {
        expect(same(wo(`model.layers.${l}.${n}.weight`), wb(`model.layers.${l}.${n}.weight`))).toBe(true);
      }
    }
    expect(same(wo('model.norm.weight'), wb('model.norm.weight'))).toBe(true);
  });

  it('copies the real Qwen3 tokenizer files by default', async () => {
    const { dir } = await make({ vocabSize: 2048 });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      expect(sha(path.join(dir, f))).toBe(sha(path.join(qwen3TokenizerDir(), f)));
    }
    expect(sha(path.join(dir, 'tokenizer.json'))).toBe('aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4');
  });

  it('rejects invalid options', async () => {
    await expect(make({ ...SMALL, numHeads: 3 })).rejects.toThrow(/numKvHeads/);
    await expect(make({ ...SMALL, outlierChannels: { channels: [64], scale: 2 } })).rejects.toThrow(/outlier/);
    await expect(make({ ...SMALL, shards: 100 })).rejects.toThrow(/shards/);
  });
});

describe('tiny checkpoints through the reference', () => {
  it('head_dim·heads ≠ hidden, GQA ratio 3, untied, sharded: finite, normalised, causal', async () => {
    const { dir } = await make({ ...SMALL, hiddenSize: 48, numHeads: 6, numKvHeads: 2, headDim: 24, numLayers: 3, tieWordEmbeddings: false, shards: 2 });
    const ref = await reference(dir);
    const ids = prompt(12, 2048);
    const lp = ref.forward(ids);
    for (const row of lp) {
      expect(row.every(Number.isFinite)).toBe(true);
      expect(row.reduce((s, x) => s + Math.exp(x), 0)).toBeCloseTo(1, 10);
    }
    // Causality: position t only sees tokens 0..t.
    const prefix = ref.forward(ids.slice(0, 5));
    for (let t = 0; t < 5; t++) for (let v = 0; v < 2048; v++) expect(Math.abs(prefix[t]![v]! - lp[t]![v]!)).toBeLessThan(1e-12);
    // greedy agrees with forward on the extended sequence.
    const g = ref.greedy(ids, 3);
    const full = ref.forward([...ids, ...g.tokenIds]);
    g.tokenIds.forEach((id, i) => expect(topK(full[ids.length - 1 + i]!, 1)[0]![0]).toBe(id));
  });

  it('default shape (vocab 151936, hidden 64, head_dim 32): 32 positions with spread-out logits, quickly', async () => {
    const { dir } = await make({ tokenizer: false });
    const ref = await reference(dir);
    const t0 = performance.now();
    const lp = ref.forward(prompt(32, 151936));
    const ms = performance.now() - t0;
    const gaps = lp.map((row) => { const [a, b] = topK(row, 2); return a![1] - b![1]; });
    const top1 = lp.map((row) => topK(row, 1)[0]![1]);
    console.log(`reference forward, 32 positions × vocab 151936: ${ms.toFixed(0)} ms; min top-2 gap ${Math.min(...gaps).toExponential(2)}`);
    expect(ms).toBeLessThan(5000);
    expect(gaps.filter((g) => g < 1e-3).length).toBeLessThanOrEqual(1);
    expect(Math.max(...top1)).toBeLessThan(-0.05); // not one-hot
    expect(Math.min(...top1)).toBeGreaterThan(-Math.log(151936) + 3); // far from uniform
  });

  it.runIf(process.env['QLLM_TEST_BIG'] === '1')('Qwen3-0.6B shape in bounded memory (QLLM_TEST_BIG=1)', async () => {
    const t0 = performance.now();
    const { dir } = await make({ ...QWEN3_0_6B_SHAPE, tokenizer: false });
    const ms = performance.now() - t0;
    const size = readdirSync(dir).filter((f) => WEIGHT_FILE.test(f)).reduce((s, f) => s + statSync(path.join(dir, f)).size, 0);
    console.log(`Qwen3-0.6B-shaped checkpoint: ${(size / 1e9).toFixed(3)} GB in ${(ms / 1000).toFixed(1)} s, rss ${(process.memoryUsage().rss / 1e9).toFixed(2)} GB`);
    expect(size).toBeGreaterThan(1_192_099_840);
    expect(ms).toBeLessThan(60_000);
  }, 300_000);
});
