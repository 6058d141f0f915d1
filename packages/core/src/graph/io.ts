/**
 * The contract between an architecture's graph and the engine that runs it (one sequence per run).
 * Inputs:  input_ids int64 [S]; positions int64 [S]; logits_indices int64 [M] (which of the S rows get logits);
 *          past_key.{i} / past_value.{i} float32 [1, numKvHeads, P, headDim] (P may be 0).
 * Outputs: logits float32 [M, vocab]; present_key.{i} / present_value.{i} float32 [1, numKvHeads, P+S, headDim].
 */
export const GRAPH_IO = {
  inputIds: 'input_ids',
  positions: 'positions',
  logitsIndices: 'logits_indices',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  logits: 'logits',
  presentKey: (layer: number) => `present_key.${layer}`,
  presentValue: (layer: number) => `present_value.${layer}`,
} as const;

/**
 * The contract of a single decoder layer's graph (layer-by-layer calibration): no KV cache, one whole sequence.
 * Inputs: hidden_states float32 [S, hidden]; positions int64 [S]. Output: hidden_states_out float32 [S, hidden].
 */
export const LAYER_IO = {
  hidden: 'hidden_states',
  positions: 'positions',
  hiddenOut: 'hidden_states_out',
} as const;
