import type { BackendV1 } from './backend/v1/backend-v1.js';
import type { ModelArchitectureV1, ModelConfigV1 } from './model/v1/model-architecture-v1.js';
import type { QuantizationMethodV1 } from './quantizer/v1/quantization-method-v1.js';
import { Registry } from './registry.js';

/** Model architectures by Hugging Face `architectures[0]` name (e.g. 'Qwen3ForCausalLM'). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const modelArchitectures = new Registry<ModelArchitectureV1<any>>('model architecture');
/** Quantization methods by name (e.g. 'SmoothQuant'). */
export const quantizationMethods = new Registry<QuantizationMethodV1>('quantization method');
/** Backends by name (e.g. 'cpu'). */
export const backends = new Registry<BackendV1>('backend');

export type AnyModelArchitecture = ModelArchitectureV1<ModelConfigV1>;
