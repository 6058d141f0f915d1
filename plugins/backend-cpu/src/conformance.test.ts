// The reusable backend conformance suite from @qllm/testing, on this backend (fused ops and the plain-op fallback).
import { qwen3 } from '@qllm/model-qwen3';
import { runBackendConformance } from '@qllm/testing/conformance';
import { createCpuBackend } from './cpu-backend.js';

runBackendConformance(createCpuBackend({ threads: 2 }), { architecture: qwen3 });
