import { qllmProject } from '../../vitest.shared.ts';

export default qllmProject('qllm-example-weight-only-int8');
