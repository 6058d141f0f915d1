/**
 * Qwen3's name table: every tensor and linear layer under its Hugging Face name (what the graph reads) and its
 * MindFormers name (Golden Stick's checkpoints; reference/golden-stick.md §3). Linear entries name the module: a
 * checkpoint layout adds its own tensor suffixes (`.weight`; Golden Stick's `._layer.weight`, `.quant_op.input_scale`…).
 */
import type { TensorNameV1 } from '@qllm/core';

/** Per decoder layer: logical name → [kind, HF name, MindFormers name] (relative to `model.layers.{i}.`). */
const LAYER: ReadonlyArray<readonly [string, TensorNameV1['kind'], string, string]> = [
  ['attention_norm', 'tensor', 'input_layernorm.weight', 'attention_norm.weight'],
  ['q', 'linear', 'self_attn.q_proj', 'attention.wq'],
  ['k', 'linear', 'self_attn.k_proj', 'attention.wk'],
  ['v', 'linear', 'self_attn.v_proj', 'attention.wv'],
  ['q_norm', 'tensor', 'self_attn.q_norm.weight', 'attention.q_norm.weight'],
  ['k_norm', 'tensor', 'self_attn.k_norm.weight', 'attention.k_norm.weight'],
  ['o', 'linear', 'self_attn.o_proj', 'attention.wo'],
  ['ffn_norm', 'tensor', 'post_attention_layernorm.weight', 'ffn_norm.weight'],
  ['gate', 'linear', 'mlp.gate_proj', 'feed_forward.w1'],
  ['up', 'linear', 'mlp.up_proj', 'feed_forward.w3'],
  ['down', 'linear', 'mlp.down_proj', 'feed_forward.w2'],
];

/** The whole table for `numLayers` decoder layers, in checkpoint order. */
export function qwen3TensorNames(c: { numLayers: number }): TensorNameV1[] {
  const names: TensorNameV1[] = [
    { logical: 'embedding', kind: 'tensor', hf: 'model.embed_tokens.weight', mindformers: 'model.tok_embeddings.embedding_weight' },
  ];
  for (let i = 0; i < c.numLayers; i++) {
    for (const [logical, kind, hf, mindformers] of LAYER) {
      names.push({ logical: `layers.${i}.${logical}`, kind, hf: `model.layers.${i}.${hf}`, mindformers: `model.layers.${i}.${mindformers}` });
    }
  }
  names.push(
    { logical: 'final_norm', kind: 'tensor', hf: 'model.norm.weight', mindformers: 'model.norm_out.weight' },
    { logical: 'lm_head', kind: 'linear', hf: 'lm_head', mindformers: 'lm_head' },
  );
  return names;
}
