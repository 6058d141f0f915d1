import { qllmProject } from '../../vitest.shared';

export default qllmProject('@qllm/model-qwen3');
