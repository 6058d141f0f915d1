import { z } from 'zod';
import { ConfigError, parseWithSchema, type ModelConfigV1 } from '@qllm/core';

const positiveInt = z.number().int().positive();

/** The config.json fields Qwen3ForCausalLM reads (after core's normalisation of dtype / rope_parameters). */
const schema = z.object({
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt,
  head_dim: positiveInt.optional(),
  vocab_size: positiveInt,
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(1_000_000),
  max_position_embeddings: positiveInt.default(40960),
  tie_word_embeddings: z.boolean().default(false),
  torch_dtype: z.string().default('bfloat16'),
  attention_bias: z.literal(false).default(false),
  hidden_act: z.literal('silu').default('silu'),
  rope_scaling: z.null({ message: 'rope_scaling (YaRN) is not supported yet; remove it for contexts up to 40960' }).optional(),
});

export interface Qwen3Config extends ModelConfigV1 {
  intermediateSize: number;
  numHeads: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
}

export function parseQwen3Config(raw: Record<string, unknown>, file: string): Qwen3Config {
  const c = parseWithSchema(schema, raw, file);
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw new ConfigError(
      `${file}: num_attention_heads (${c.num_attention_heads}) must be a multiple of num_key_value_heads (${c.num_key_value_heads})`,
    );
  }
  return {
    architecture: 'Qwen3ForCausalLM',
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_key_value_heads,
    // head_dim comes from the config; hidden/heads only when a config omits it (it is 128 for every Qwen3).
    headDim: c.head_dim ?? c.hidden_size / c.num_attention_heads,
    vocabSize: c.vocab_size,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    maxPositionEmbeddings: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    torchDtype: c.torch_dtype,
  };
}
