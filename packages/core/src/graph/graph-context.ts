import { CheckpointError } from '../errors.js';
import { toFloat32, type HostTensor } from '../tensor/dtype.js';
import type { TensorSource } from '../tensor/tensor-source.js';
import type { GraphContextV1, GraphInputsV1 } from '../model/v1/graph-context-v1.js';
import type { LinearSpec, ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import type { LinearContextV1, LinearMethodV1 } from '../quantizer/v1/quantization-method-v1.js';
import type { Int8GemmForm } from '../backend/v1/backend-v1.js';
import { AttentionLowering, type KvDtype } from './attention.js';
import { float, GraphBuilder } from './graph-builder.js';
import { int8WeightOnlyHead } from './int8-head.js';
import { emitInt8MatMul } from './int8-matmul.js';
import { GRAPH_IO, LAYER_IO } from './io.js';

/** The weight tensor of a linear layer. */
export const linearWeightName = (layer: LinearSpec): string => layer.weight ?? `${layer.name}.weight`;

/**
 * onnxruntime refuses an initializer over 2 GiB passed in memory ("exceeds the 2147483648 byte limit for embedded
 * initializer data"); larger matrices are split into row blocks of at most this many bytes.
 */
export const MAX_INITIALIZER_BYTES = 2 ** 30;

/** 16-bit tensors up to this size (norm weights) are widened to float32 initializers; larger ones stay 16-bit. */
const SMALL_TENSOR_BYTES = 64 * 1024;
const TO_FLOAT = 1;

/** The element types a float tensor is kept in. */
type StoredType = 'float32' | 'bfloat16' | 'float16';

/** Output columns per Gemm: onnxruntime's fp32 GEMV streams a very wide weight at a quarter of the bandwidth. */
const MAX_GEMM_COLUMNS = 16384;

/**
 * The float path every method falls back to: y = x · Wᵀ with W kept [out, in] (Gemm transB). A very wide layer
 * (a 151936-token head) is split into row blocks of W, each its own Gemm, concatenated: 5× faster decode there.
 */
export const unquantizedLinear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    const name = linearWeightName(layer);
    const { outFeatures: out, inFeatures: inF } = layer;
    if (out <= MAX_GEMM_COLUMNS) return ctx.g.op('Gemm', [x, ctx.floatWeight(name, [out, inF])], { transB: 1 }, { name: layer.name });
    const blocks = Math.ceil(out / MAX_GEMM_COLUMNS);
    const rows = Math.ceil(out / blocks);
    const parts: string[] = [];
    for (let b = 0; b * rows < out; b++) {
      const first = b * rows;
      const count = Math.min(rows, out - first);
      const w = ctx.floatWeightRows(name, [out, inF], first, count);
      parts.push(ctx.g.op('Gemm', [x, w], { transB: 1 }, { name: `${layer.name}.${b}` }));
    }
    return ctx.g.op('Concat', parts, { axis: -1 });
  },
};

/** How a float head runs: as stored, or weight-only int8 (int8-head.ts). */
export type LmHeadOption = 'float' | 'int8';

export interface GraphContextOptions {
  checkpoint: TensorSource;
  config: ModelConfigV1;
  /** The method for each linear layer (null: unquantized). */
  linearMethod: (layer: LinearSpec) => LinearMethodV1 | null;
  /** The int8 GEMM form of the backend that will run the graph (`BackendV1.int8GemmForm`); needed by int8 linears. */
  int8Form?: Int8GemmForm;
  /** Which ops the backend runs (`BackendV1.supportsOp`): fused attention and norms where it has them. Default: none. */
  supportsOp?: (domain: string, opType: string) => boolean;
  /** The KV cache's element type (default float32). */
  kvDtype?: KvDtype;
  /**
   * How a float head (a linear outside the decoder stack, `layer < 0`, that the quantization method leaves float) runs:
   * 'float' as stored (default), or 'int8' weight-only with per-token activations (int8-head.ts; needs int8Form).
   */
  lmHead?: LmHeadOption;
  /** Largest float32 initializer in bytes before a matrix is split into row blocks (default MAX_INITIALIZER_BYTES). */
  maxInitializerBytes?: number;
  /** The longest sequence the graph serves (rotary tables); default config.maxPositionEmbeddings. */
  maxLen?: number;
  /** The checkpoint's small tensors, read ahead (`readSmallTensors`): what `smallTensor` answers from. */
  smallTensors?: ReadonlyMap<string, HostTensor>;
  builder?: GraphBuilder;
}

/** Tensors up to this many values are read ahead for `LinearContextV1.smallTensor`. */
export const SMALL_TENSOR_ELEMENTS = 64;

/** Every tensor of at most SMALL_TENSOR_ELEMENTS values in the checkpoint (scales, zero points), read now. */
export async function readSmallTensors(checkpoint: TensorSource): Promise<Map<string, HostTensor>> {
  const small = new Map<string, HostTensor>();
  for (const name of checkpoint.names()) {
    if (checkpoint.info(name).shape.reduce((a, b) => a * b, 1) <= SMALL_TENSOR_ELEMENTS) small.set(name, await checkpoint.read(name));
  }
  return small;
}

/** "a.b.{q_proj,k_proj}" for linears "a.b.q_proj" and "a.b.k_proj": the name of a packed group. */
export function packedName(layers: readonly LinearSpec[]): string {
  const names = layers.map((l) => l.name);
  const dot = names[0]!.lastIndexOf('.');
  const prefix = names[0]!.slice(0, dot + 1);
  return names.every((n) => n.startsWith(prefix) && !n.slice(prefix.length).includes('.'))
    ? `${prefix}{${names.map((n) => n.slice(prefix.length)).join(',')}}`
    : `{${names.join(',')}}`;
}

/** Implements GraphContextV1 over a checkpoint: weights become lazily read initializers in their stored width. */
export function createGraphContext(options: GraphContextOptions): GraphContextV1 & LinearContextV1 & { readonly g: GraphBuilder } {
  const { checkpoint, config } = options;
  const g = options.builder ?? new GraphBuilder(config.architecture);
  /** Graph values of float tensors (as float32), by tensor name. */
  const weights = new Map<string, string>();
  /** Initializers holding a tensor in its stored width, by tensor name. */
  const stored = new Map<string, { init: string; elemType: StoredType }>();

  const checkFloat = (name: string, shape: number[]): void => {
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
  };

  /**
   * The tensor as an initializer in the width the checkpoint stores it (BF16, F16 or F32; F64 and small 16-bit
   * tensors become float32 here). Nothing is widened in JavaScript: a 16-bit weight reaches the backend as 16-bit.
   */
  const storedWeight = (name: string, shape: number[]) => {
    let s = stored.get(name);
    if (s) return s;
    checkFloat(name, shape);
    const { dtype } = checkpoint.info(name);
    const numel = shape.reduce((a, b) => a * b, 1);
    if ((dtype === 'BF16' || dtype === 'F16') && numel * 2 > SMALL_TENSOR_BYTES) {
      const elemType = dtype === 'BF16' ? 'bfloat16' : 'float16';
      s = { init: g.initializer(name, elemType, shape, async () => (await checkpoint.read(name)).data as Uint16Array), elemType };
    } else {
      s = { init: g.initializer(name, 'float32', shape, async () => toFloat32(await checkpoint.read(name))), elemType: 'float32' };
    }
    stored.set(name, s);
    return s;
  };

  /** A 16-bit value as float32 (a Cast of an initializer is folded by the backend when the session is created). */
  const widen = (value: string, elemType: string): string => (elemType === 'float32' ? value : g.op('Cast', [value], { to: TO_FLOAT }));

  const floatWeight = (name: string, shape: number[]): string => {
    let value = weights.get(name);
    if (!value) {
      const s = storedWeight(name, shape);
      weights.set(name, (value = widen(s.init, s.elemType)));
    }
    return value;
  };

  /** Rows of a tensor in its stored width: a view of its initializer, sharing the bytes (one per row range). */
  const views = new Map<string, { init: string; elemType: StoredType }>();
  const storedRows = (name: string, shape: number[], first: number, count: number) => {
    const s = storedWeight(name, shape);
    if (first === 0 && count === shape[0]) return s;
    const key = `${name}[${first}:${first + count}]`;
    let view = views.get(key);
    if (!view) views.set(key, (view = { init: g.initializerView(key, s.init, first, count), elemType: s.elemType }));
    return view;
  };

  const floatWeightRows = (name: string, shape: number[], first: number, count: number): string => {
    const s = storedRows(name, shape, first, count);
    return widen(s.init, s.elemType);
  };

  const supports = (domain: string, op: string) => options.supportsOp?.(domain, op) ?? false;
  const kvDtype = options.kvDtype ?? 'float32';
  let attention: AttentionLowering | undefined;
  const lowering = (io: { inputIds?: string; hidden?: string }) => {
    attention = new AttentionLowering({
      g,
      supports: (op) => supports('com.microsoft', op),
      kvDtype,
      maxLen: options.maxLen ?? config.maxPositionEmbeddings,
    }, io);
  };

  const methodOf = (layer: LinearSpec): LinearMethodV1 =>
    options.linearMethod(layer) ?? (layer.layer < 0 && options.lmHead === 'int8' ? int8WeightOnlyHead : unquantizedLinear);

  const ctx: GraphContextV1 & LinearContextV1 & { readonly g: GraphBuilder } = {
    g,
    checkpoint,
    floatWeight,
    floatWeightRows,
    weight: floatWeight,
    embedding(name, shape, ids) {
      const [rows, width] = shape;
      // Rows are gathered in the stored width and only the gathered ones widened: the table stays 16-bit.
      const gather = (s: { init: string; elemType: string }, at: string) => widen(g.op('Gather', [s.init, at], { axis: 0 }), s.elemType);
      const elemBytes = storedWeight(name, shape).elemType === 'float32' ? 4 : 2;
      const blockRows = Math.max(1, Math.floor((options.maxInitializerBytes ?? MAX_INITIALIZER_BYTES) / (width * elemBytes)));
      if (rows <= blockRows) return gather(storedWeight(name, shape), ids);
      // Each block gathers the ids that fall in it (others clamped to a valid row and zeroed), and the blocks add up.
      let sum: string | undefined;
      for (let first = 0; first < rows; first += blockRows) {
        const count = Math.min(blockRows, rows - first);
        const local = g.op('Sub', [ids, g.ints(first)]);
        const inBlock = g.op('And', [g.op('GreaterOrEqual', [local, g.ints(0)]), g.op('Less', [local, g.ints(count)])]);
        const clamped = g.op('Where', [inBlock, local, g.ints(0)]);
        const rowsOf = gather(storedRows(name, shape, first, count), clamped);
        const part = g.op('Where', [g.op('Unsqueeze', [inBlock, g.ints([1])]), rowsOf, g.scalar(0)]);
        sum = sum === undefined ? part : g.op('Add', [sum, part]);
      }
      return sum!;
    },
    inputs(): GraphInputsV1 {
      const ids = g.input(GRAPH_IO.inputIds, 'int64', ['batch', 'step']);
      lowering({ inputIds: ids });
      return {
        inputIds: g.op('Reshape', [ids, g.ints([-1])]),
        logitsIndices: g.input(GRAPH_IO.logitsIndices, 'int64', ['logit_rows']),
      };
    },
    layerInputs() {
      const hidden = g.input(LAYER_IO.hidden, 'float32', ['tokens', config.hiddenSize]);
      lowering({ hidden });
      return { hidden };
    },
    layerOutputs(hidden) {
      g.output(hidden, LAYER_IO.hiddenOut, 'float32', ['tokens', config.hiddenSize]);
    },
    headInput() {
      return g.input(LAYER_IO.hidden, 'float32', ['tokens', config.hiddenSize]);
    },
    outputs({ logits }) {
      g.output(logits, GRAPH_IO.logits, 'float32', ['logit_rows', config.vocabSize]);
      for (const [i, fresh] of (attention?.newKv ?? []).entries()) {
        if (!fresh) continue;
        const kv = ['batch', config.numKvHeads, 'step', config.headDim];
        g.output(fresh.key, GRAPH_IO.newKey(i), kvDtype, kv);
        g.output(fresh.value, GRAPH_IO.newValue(i), kvDtype, kv);
      }
    },
    attention(layer, q, k, v, spec) {
      if (!attention) throw new Error('attention() needs the graph inputs: call inputs() or layerInputs() first');
      return g.withScope(`attention.${layer}`, () => attention!.emit(layer, q, k, v, spec));
    },
    rmsNorm(x, weight, eps, opts = {}) {
      if (opts.residual === undefined) {
        return { out: g.op('SimplifiedLayerNormalization', [x, weight], { axis: -1, epsilon: float(eps), stash_type: 1 }), sum: x };
      }
      if (supports('com.microsoft', 'SkipSimplifiedLayerNormalization')) {
        const outs = g.node('SkipSimplifiedLayerNormalization', [x, opts.residual, weight], { epsilon: float(eps) }, { domain: 'com.microsoft', outputs: 4 });
        return { out: outs[0]!, sum: outs[3]! };
      }
      const sum = g.op('Add', [x, opts.residual]);
      return { out: g.op('SimplifiedLayerNormalization', [sum, weight], { axis: -1, epsilon: float(eps), stash_type: 1 }), sum };
    },
    int8MatMul(spec) {
      if (!options.int8Form) {
        throw new Error(`${spec.weight.name}: an int8 linear needs the backend's int8 GEMM form (createGraphContext's int8Form), and none was given`);
      }
      return emitInt8MatMul(g, options.int8Form, spec);
    },
    linear(layer, x) {
      return g.withScope(layer.name, () => methodOf(layer).apply(ctx, layer, x));
    },
    linears(layers, x) {
      const method = methodOf(layers[0]!);
      if (layers.length > 1 && method.applyPacked && layers.every((l) => methodOf(l) === method)) {
        const packed = g.withScope(packedName(layers), () => method.applyPacked!(ctx, layers, x));
        if (packed) return packed;
      }
      return layers.map((l) => ctx.linear(l, x));
    },
    smallTensor: (name) => options.smallTensors?.get(name),
  };
  return ctx;
}
