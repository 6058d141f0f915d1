export { CandidateBuffers, filterCandidates, type Candidates, type SamplerConfig } from './candidates.js';
export {
  buildLogitsProcessors,
  minTokensProcessor,
  presenceFrequencyPenaltyProcessor,
  repetitionPenaltyProcessor,
  type LogitsProcessor,
  type LogitsProcessorConfig,
  type SequenceState,
} from './logits-processors.js';
export { topLogprobs, type TopLogprobs } from './logprobs.js';
export { Rng } from './rng.js';
export { SAMPLING_EPS, argmax, getSampler, greedySampler, randomSampler, type Sampler } from './sampler.js';
export { topKIndices } from './select.js';
