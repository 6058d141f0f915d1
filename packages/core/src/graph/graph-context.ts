import { CheckpointError } from '../errors.js';
import { toFloat32 } from '../tensor/dtype.js';
import type { TensorSource } from '../tensor/tensor-source.js';
import type { GraphContextV1, GraphInputsV1 } from '../model/v1/graph-context-v1.js';
import type { LinearSpec, ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import type { LinearContextV1, LinearMethodV1 } from '../quantizer/v1/quantization-method-v1.js';
import { GraphBuilder } from './graph-builder.js';
import { GRAPH_IO, LAYER_IO } from './io.js';

/** The weight tensor of a linear layer. */
export const linearWeightName = (layer: LinearSpec): string => layer.weight ?? `${layer.name}.weight`;

/** The float path every method falls back to: y = x · Wᵀ with W kept [out, in] (Gemm transB). */
export const unquantizedLinear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    const w = ctx.floatWeight(linearWeightName(layer), [layer.outFeatures, layer.inFeatures]);
    return ctx.g.op('Gemm', [x, w], { transB: 1 }, { name: layer.name });
  },
};

export interface GraphContextOptions {
  checkpoint: TensorSource;
  config: ModelConfigV1;
  /** The method for each linear layer (null: unquantized). */
  linearMethod: (layer: LinearSpec) => LinearMethodV1 | null;
  builder?: GraphBuilder;
}

/** Implements GraphContextV1 over a checkpoint: weights become lazily read float32 initializers. */
export function createGraphContext(options: GraphContextOptions): GraphContextV1 & LinearContextV1 {
  const { checkpoint, config } = options;
  const g = options.builder ?? new GraphBuilder(config.architecture);
  const weights = new Map<string, string>();

  const floatWeight = (name: string, shape: number[]): string => {
    const known = weights.get(name);
    if (known) return known;
    const info = checkpoint.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`,
        info.file,
        name,
      );
    }
    if (!['BF16', 'F16', 'F32', 'F64'].includes(info.dtype)) {
      throw new CheckpointError(`${info.file}: tensor '${name}' has dtype ${info.dtype}, expected a float dtype`, info.file, name);
    }
    const value = g.initializer(name, 'float32', shape, async () => toFloat32(await checkpoint.read(name)));
    weights.set(name, value);
    return value;
  };

  const ctx: GraphContextV1 & LinearContextV1 = {
    g,
    checkpoint,
    floatWeight,
    weight: floatWeight,
    inputs(): GraphInputsV1 {
      const kv = [1, config.numKvHeads, 'past', config.headDim];
      const layers = Array.from({ length: config.numLayers }, (_, i) => i);
      return {
        inputIds: g.input(GRAPH_IO.inputIds, 'int64', ['tokens']),
        positions: g.input(GRAPH_IO.positions, 'int64', ['tokens']),
        logitsIndices: g.input(GRAPH_IO.logitsIndices, 'int64', ['logit_rows']),
        pastKeys: layers.map((i) => g.input(GRAPH_IO.pastKey(i), 'float32', kv)),
        pastValues: layers.map((i) => g.input(GRAPH_IO.pastValue(i), 'float32', kv)),
      };
    },
    layerInputs() {
      return {
        hidden: g.input(LAYER_IO.hidden, 'float32', ['tokens', config.hiddenSize]),
        positions: g.input(LAYER_IO.positions, 'int64', ['tokens']),
      };
    },
    layerOutputs(hidden) {
      g.output(hidden, LAYER_IO.hiddenOut, 'float32', ['tokens', config.hiddenSize]);
    },
    headInput() {
      return g.input(LAYER_IO.hidden, 'float32', ['tokens', config.hiddenSize]);
    },
    outputs({ logits, presentKeys, presentValues }) {
      g.output(logits, GRAPH_IO.logits, 'float32', ['logit_rows', config.vocabSize]);
      const kv = [1, config.numKvHeads, 'total', config.headDim];
      presentKeys.forEach((v, i) => g.output(v, GRAPH_IO.presentKey(i), 'float32', kv));
      presentValues.forEach((v, i) => g.output(v, GRAPH_IO.presentValue(i), 'float32', kv));
    },
    linear(layer, x) {
      const method = options.linearMethod(layer) ?? unquantizedLinear;
      return g.withScope(layer.name, () => method.apply(ctx, layer, x));
    },
  };
  return ctx;
}
