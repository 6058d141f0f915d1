import { qllmProject } from '../../vitest.shared.ts';

export default qllmProject('@qllm/backend-ascend');
