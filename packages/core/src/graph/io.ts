/**
 * The contract between a model's graph and the engine that runs it: one step of a batch of sequences, each in its
 * own slot of a preallocated KV cache.
 * Inputs:  input_ids int64 [B, S] (every row of a step has the same length S: a decode step has S = 1, a prefill
 *          chunk B = 1);
 *          seqlens_k int32 [B]: per row, the tokens in its cache after this step, minus one (past + S − 1);
 *          total_sequence_length int32 [1]: the largest past + S of the batch;
 *          logits_indices int64 [M]: which of the B·S rows get logits;
 *          past_key.{i} / past_value.{i} [B, numKvHeads, maxLen, headDim] (the KV dtype): the cache rows of the
 *          batch's slots, bound by the engine as the present outputs too, so each step writes its new positions in
 *          place.
 * Outputs: logits float32 [M, vocab]; present_key.{i} / present_value.{i}: the same buffers as past.
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
  presentKey: (layer: number) => `present_key.${layer}`,
  presentValue: (layer: number) => `present_value.${layer}`,
} as const;

/**
 * The contract of a single decoder layer's graph (layer-by-layer calibration): no KV cache, one whole sequence at
 * positions 0…S−1. Input: hidden_states float32 [S, hidden]. Output: hidden_states_out float32 [S, hidden].
 */
export const LAYER_IO = {
  hidden: 'hidden_states',
  hiddenOut: 'hidden_states_out',
} as const;
