export { qwen3 } from './qwen3-model.js';
export { parseQwen3Config, type Qwen3Config } from './qwen3-config.js';
export { qwen3TensorNames } from './qwen3-names.js';
