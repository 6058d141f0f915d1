/** The name table covers exactly the architecture's tensors and linears, and its MindFormers names are Golden Stick's. */
import { describe, expect, it } from 'vitest';
import { parseQwen3Config } from './qwen3-config.js';
import { qwen3 } from './qwen3-model.js';

const config = parseQwen3Config({
  hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32,
  vocab_size: 1000, tie_word_embeddings: false,
}, 'config.json');

describe('Qwen3 name table', () => {
  const table = qwen3.tensorNames!(config);

  it('names every expected tensor and linear layer once, under HF names', () => {
    const tensors = table.filter((e) => e.kind === 'tensor').map((e) => e.hf);
    const linears = table.filter((e) => e.kind === 'linear').map((e) => e.hf);
    expect(linears).toEqual(qwen3.linearLayers(config).map((l) => l.name));
    const expected = qwen3.expectedTensors(config).map((t) => t.name);
    expect([...tensors, ...linears.map((l) => `${l}.weight`)].sort()).toEqual(expected.sort());
    expect(new Set(table.map((e) => e.logical)).size).toBe(table.length);
    expect(new Set(table.map((e) => e.mindformers)).size).toBe(table.length);
  });

  it('maps to the MindFormers names of reference/golden-stick.md §3', () => {
    const mf = Object.fromEntries(table.map((e) => [e.hf, e.mindformers]));
    expect(mf).toMatchObject({
      'model.embed_tokens.weight': 'model.tok_embeddings.embedding_weight',
      'model.norm.weight': 'model.norm_out.weight',
      lm_head: 'lm_head',
      'model.layers.1.input_layernorm.weight': 'model.layers.1.attention_norm.weight',
      'model.layers.1.post_attention_layernorm.weight': 'model.layers.1.ffn_norm.weight',
      'model.layers.1.self_attn.q_norm.weight': 'model.layers.1.attention.q_norm.weight',
      'model.layers.1.self_attn.k_norm.weight': 'model.layers.1.attention.k_norm.weight',
      'model.layers.1.self_attn.q_proj': 'model.layers.1.attention.wq',
      'model.layers.1.self_attn.k_proj': 'model.layers.1.attention.wk',
      'model.layers.1.self_attn.v_proj': 'model.layers.1.attention.wv',
      'model.layers.1.self_attn.o_proj': 'model.layers.1.attention.wo',
      'model.layers.1.mlp.gate_proj': 'model.layers.1.feed_forward.w1',
      'model.layers.1.mlp.up_proj': 'model.layers.1.feed_forward.w3',
      'model.layers.1.mlp.down_proj': 'model.layers.1.feed_forward.w2',
    });
  });
});
