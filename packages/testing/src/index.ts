export { Qwen3Reference, refConfigFromHf } from './reference.js';
export { logSoftmax, argmax, topK } from './logprobs.js';
export type { Qwen3RefConfig, RefWeights } from './reference.js';
export { loadRefWeights } from './load-weights.js';
export { makeTinyQwen3, qwen3TokenizerDir, QWEN3_0_6B_SHAPE } from './tiny-qwen3.js';
export type { TinyQwen3Options } from './tiny-qwen3.js';
export { QWEN3_GOLDEN_DIR, GOLDEN_NAMES, goldenAvailable, goldenDir, readGoldenExpected } from './golden.js';
export type { GoldenName, GoldenPrompt } from './golden.js';
