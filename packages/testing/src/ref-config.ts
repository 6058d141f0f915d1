// The Qwen3 config.json keys the float64 reference needs.

/** The subset of a Qwen3 config.json the forward pass needs. */
export interface Qwen3RefConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
}

function positiveInt(raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new TypeError(`config.json: "${key}" must be a positive integer (got ${JSON.stringify(raw[key])})`);
  }
  return v;
}

function positiveNumber(v: unknown, key: string): number {
  if (typeof v !== 'number' || !(v > 0)) throw new TypeError(`config.json: "${key}" must be a positive number (got ${JSON.stringify(v)})`);
  return v;
}

/**
 * Reads the HF config.json keys of a Qwen3 model. Accepts both the transformers 4.x layout (`rope_theta`) and the
 * 5.x one (`rope_parameters.rope_theta`). Missing optional keys take Qwen3Config's defaults
 * (head_dim = hidden/heads, rope_theta 10000, rms_norm_eps 1e-6, tie_word_embeddings false).
 */
export function refConfigFromHf(raw: Record<string, unknown>): Qwen3RefConfig {
  const hiddenSize = positiveInt(raw, 'hidden_size');
  const numHeads = positiveInt(raw, 'num_attention_heads');
  const numKvHeads = positiveInt(raw, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new TypeError(`config.json: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  }
  const headDim = positiveInt(raw, 'head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw new TypeError(`config.json: head_dim (${headDim}) must be even for RoPE`);
  const ropeParams = raw['rope_parameters'] as Record<string, unknown> | null | undefined;
  const ropeTheta = raw['rope_theta'] ?? ropeParams?.['rope_theta'] ?? 10000;
  const tie = raw['tie_word_embeddings'] ?? false;
  if (typeof tie !== 'boolean') throw new TypeError(`config.json: "tie_word_embeddings" must be a boolean`);
  return {
    hiddenSize,
    intermediateSize: positiveInt(raw, 'intermediate_size'),
    numLayers: positiveInt(raw, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: positiveInt(raw, 'vocab_size'),
    rmsNormEps: positiveNumber(raw['rms_norm_eps'] ?? 1e-6, 'rms_norm_eps'),
    ropeTheta: positiveNumber(ropeTheta, 'rope_theta'),
    tieWordEmbeddings: tie,
  };
}
