/**
 * The contract between a model's graph and the engine that runs it: one step of a batch of sequences, each in its
 * own slot of a preallocated KV cache.
 * Inputs:  input_ids int64 [B, S] (every row of a step has the same length S: a decode step has S = 1, a prefill
 *          chunk B = 1);
 *          seqlens_k int32 [B]: per row, the tokens in its cache after this step, minus one (past + S − 1);
 *          total_sequence_length int32 [1]: the largest past + S of the batch;
 *          logits_indices int64 [M]: which of the B·S rows get logits;
 *          past_key.{i} / past_value.{i} [B, numKvHeads, maxLen, headDim] (the KV dtype): the cache rows of the
 *          batch's slots, read-only: row b's first past_b = seqlens_k[b] + 1 − S positions are its context.
 * Outputs: logits float32 [M, vocab]; new_key.{i} / new_value.{i} [B, numKvHeads, S, headDim] (the KV dtype): the
 *          step's keys (rotated) and values, which the engine writes into the cache at positions past_b…past_b+S−1.
 * Token t of row b sits at position past_b + t.
 */
export const GRAPH_IO = {
  inputIds: 'input_ids',
  seqlensK: 'seqlens_k',
  totalSequenceLength: 'total_sequence_length',
  logitsIndices: 'logits_indices',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  logits: 'logits',
  newKey: (layer: number) => `new_key.${layer}`,
  newValue: (layer: number) => `new_value.${layer}`,
} as const;

/**
 * The contract of a single decoder layer's graph (layer-by-layer calibration): no KV cache, one whole sequence at
 * positions 0…S−1. Input: hidden_states float32 [S, hidden]. Output: hidden_states_out float32 [S, hidden].
 */
export const LAYER_IO = {
  hidden: 'hidden_states',
  hiddenOut: 'hidden_states_out',
} as const;
