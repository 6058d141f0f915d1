// Qwen3ForCausalLM as llama.cpp's `qwen3` architecture: the tensor-name table (Hugging Face → GGUF, as gguf-py's
// constants.py / tensor_mapping.py name them) and the hyperparameters its loader reads (convert_hf_to_gguf.py's
// TextModel.set_gguf_parameters for Qwen3Model).
import { ConfigError } from '@qllm/core';
import { f32, str, u32, type GgufValue } from './format.js';

export const QWEN3_ARCH = 'qwen3';

/**
 * Per-layer names: the HF suffix after `model.layers.{i}.` → the GGUF name after `blk.{i}.`, in the order llama.cpp's
 * loader creates them.
 */
export const QWEN3_LAYER_TENSORS: Readonly<Record<string, string>> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_norm.weight': 'attn_q_norm.weight',
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

const GLOBAL_TENSORS: Readonly<Record<string, string>> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
};

/** Hugging Face names that carry no weights llama.cpp reads. */
const IGNORED = /\.rotary_emb\.inv_freq$/;

/** The GGUF name of a Hugging Face tensor; undefined for a tensor that is not exported; throws for an unknown one. */
export function qwen3TensorName(hfName: string, numLayers: number): string | undefined {
  if (IGNORED.test(hfName)) return undefined;
  const global = GLOBAL_TENSORS[hfName];
  if (global) return global;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const layer = m ? Number(m[1]) : -1;
  const suffix = m ? QWEN3_LAYER_TENSORS[m[2]!] : undefined;
  if (!suffix || layer >= numLayers) {
    throw new ConfigError(`tensor '${hfName}' is not part of Qwen3ForCausalLM (with ${numLayers} layers): cannot name it in GGUF`);
  }
  return `blk.${layer}.${suffix}`;
}

/** Norm weights (1-D) stay F32, as convert_hf_to_gguf.py keeps every 1-D and `_norm.weight` tensor. */
export function isNormTensor(ggufName: string): boolean {
  return ggufName.endsWith('_norm.weight');
}

/** A positive integer field of config.json (or its fallback), or a ConfigError naming the file and field. */
function positiveInt(config: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (!Number.isSafeInteger(v) || (v as number) <= 0) throw new ConfigError(`${file}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

function positiveNumber(config: Record<string, unknown>, key: string, file: string, fallback: number): number {
  const v = config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(`${file}: '${key}' must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

export interface Qwen3Shape {
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  tied: boolean;
}

/** The shape fields the export needs, checked. */
export function qwen3Shape(config: Record<string, unknown>, file: string): Qwen3Shape {
  return {
    numLayers: positiveInt(config, 'num_hidden_layers', file),
    hiddenSize: positiveInt(config, 'hidden_size', file),
    vocabSize: positiveInt(config, 'vocab_size', file),
    tied: config.tie_word_embeddings === true,
  };
}

/** The `qwen3.*` hyperparameters, from config.json (already normalized by @qllm/core's loader). */
export function qwen3Hparams(config: Record<string, unknown>, file: string): [string, GgufValue][] {
  const heads = positiveInt(config, 'num_attention_heads', file);
  const hidden = positiveInt(config, 'hidden_size', file);
  const headDim = positiveInt(config, 'head_dim', file, Number.isInteger(hidden / heads) ? hidden / heads : undefined);
  const a = QWEN3_ARCH;
  const kv: [string, GgufValue][] = [
    [`${a}.block_count`, u32(positiveInt(config, 'num_hidden_layers', file))],
    [`${a}.context_length`, u32(positiveInt(config, 'max_position_embeddings', file))],
    [`${a}.embedding_length`, u32(hidden)],
    [`${a}.feed_forward_length`, u32(positiveInt(config, 'intermediate_size', file))],
    [`${a}.attention.head_count`, u32(heads)],
    [`${a}.attention.head_count_kv`, u32(positiveInt(config, 'num_key_value_heads', file, heads))],
    [`${a}.rope.freq_base`, f32(positiveNumber(config, 'rope_theta', file, 10000))],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(positiveNumber(config, 'rms_norm_eps', file, 1e-6))],
    // Qwen3's head_dim need not be hidden / heads (Qwen3-0.6B: 128 vs 64), so it is always written.
    [`${a}.attention.key_length`, u32(headDim)],
    [`${a}.attention.value_length`, u32(headDim)],
  ];
  kv.push(...ropeScaling(config, file));
  return kv;
}

/** rope_scaling as convert_hf_to_gguf.py writes it: linear and YaRN; 'default' (or none) writes nothing. */
function ropeScaling(config: Record<string, unknown>, file: string): [string, GgufValue][] {
  const scaling = config.rope_scaling;
  if (scaling === undefined || scaling === null) return [];
  if (typeof scaling !== 'object' || Array.isArray(scaling)) throw new ConfigError(`${file}: 'rope_scaling' must be an object or null`);
  const s = scaling as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  if (type === undefined || type === 'default') return [];
  const factor = s.factor;
  if (typeof factor !== 'number' || !(factor > 0)) throw new ConfigError(`${file}: rope_scaling.factor must be a positive number, got ${JSON.stringify(factor)}`);
  const a = QWEN3_ARCH;
  if (type === 'linear') return [[`${a}.rope.scaling.type`, str('linear')], [`${a}.rope.scaling.factor`, f32(factor)]];
  if (type === 'yarn') {
    const original = positiveInt(s, 'original_max_position_embeddings', `${file} (rope_scaling)`);
    return [
      [`${a}.rope.scaling.type`, str('yarn')],
      [`${a}.rope.scaling.factor`, f32(factor)],
      [`${a}.rope.scaling.original_context_length`, u32(original)],
    ];
  }
  throw new ConfigError(`${file}: rope_scaling type ${JSON.stringify(type)} cannot be exported to GGUF (linear and yarn can)`);
}
