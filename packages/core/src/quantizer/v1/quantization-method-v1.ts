import type { GraphBuilder } from '../../graph/graph-builder.js';
import type { TensorSource } from '../../tensor/tensor-source.js';
import type { LinearSpec, ModelConfigV1 } from '../../model/v1/model-architecture-v1.js';

/** What a linear method may use while lowering one linear layer. */
export interface LinearContextV1 {
  readonly g: GraphBuilder;
  readonly checkpoint: TensorSource;
  /** A float checkpoint tensor as a float32 initializer, shape-checked. */
  floatWeight(name: string, shape: number[]): string;
}

/** How one linear layer is lowered into graph ops. */
export interface LinearMethodV1 {
  /** Returns y = x · Wᵀ (approximately, for quantized methods); x is [tokens, in]. */
  apply(ctx: LinearContextV1, layer: LinearSpec, x: string): string;
}

/** A quantization method plugin's online half (vLLM's QuantizationConfig). */
export interface QuantizationMethodV1 {
  readonly specificationVersion: 'v1';
  readonly name: string;
  /** Whether a checkpoint's config.json `quantization_config` was written by this method. */
  recognizes(quantizationConfig: Record<string, unknown>): boolean;
  /** The method for one linear layer of a loaded model (null: leave it unquantized). */
  getLinearMethod(layer: LinearSpec, model: { config: ModelConfigV1; quantizationConfig?: Record<string, unknown> }): LinearMethodV1 | null;
}
