import type { AttrValue, Dim, ElemType, InitializerData } from '../../graph/graph-builder.js';
import type { LinearSpec } from './model-architecture-v1.js';

/** The graph-building operations plugins use (implemented by core's GraphBuilder). */
export interface GraphOpsV1 {
  /** Add a node with one output; returns its value name. */
  op(opType: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, opts?: { domain?: string; name?: string }): string;
  /** Add a node with several outputs. `''` marks an omitted optional input. */
  node(
    opType: string, inputs: readonly string[], attrs?: Record<string, AttrValue>,
    opts?: { domain?: string; outputs?: number; name?: string; outputNames?: ReadonlyArray<string | undefined> },
  ): string[];
  /** A named initializer; `data` may be a function, called once when the model is built. */
  initializer(name: string, elemType: ElemType, shape: number[], data: InitializerData): string;
  /** A small constant. */
  constant(elemType: ElemType, shape: number[], values: ArrayLike<number> | readonly bigint[], base?: string): string;
  /** A scalar or 1-D int64 constant. */
  ints(values: readonly number[] | number): string;
  /** A float32 scalar constant. */
  scalar(value: number): string;
  /** Declare a graph input. */
  input(name: string, elemType: ElemType, shape: Dim[]): string;
  /** Mark `value` as a graph output called `name`. */
  output(value: string, name: string, elemType: ElemType, shape: Dim[]): void;
  /** Prefix node names made inside `fn` with `name/`. */
  withScope<T>(name: string, fn: () => T): T;
}

/** Names of the graph inputs the architecture uses (the rest of GRAPH_IO belongs to the context). */
export interface GraphInputsV1 {
  /** The step's token ids, flattened to [tokens] (tokens = batch × step length; rows in that order). */
  inputIds: string;
  /** Which token rows get logits: int64 [logit_rows], indices into the flattened rows. */
  logitsIndices: string;
}

/** The shape and position encoding of one attention layer. */
export interface AttentionSpecV1 {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Non-interleaved (rotate_half) rotary embedding with this base, on the whole head. */
  ropeTheta: number;
  /** Softmax scale (default headDim^-0.5). */
  scale?: number;
}

/**
 * What an architecture gets while emitting its graph. Attention, its KV cache and the token positions belong to the
 * context: the architecture hands it q, k and v, and the context emits the fused op the backend supports (or plain
 * ops where it lacks them) over the engine's cache buffers, for a batch of sequences or a single layer alike.
 */
export interface GraphContextV1 {
  readonly g: GraphOpsV1;
  /** Declares the engine's inputs (GRAPH_IO) and returns the ones the architecture reads. Call once. */
  inputs(): GraphInputsV1;
  /** For a single decoder layer's graph (LAYER_IO): declares hidden_states [S, hidden], one sequence. */
  layerInputs(): { hidden: string };
  /** For a single decoder layer's graph: declares its output. */
  layerOutputs(hidden: string): void;
  /** For the head's graph: declares hidden_states [S, hidden]; the graph's output is `logits` via outputs(). */
  headInput(): string;
  /** Declares the logits output. Call once, at the end. */
  outputs(values: { logits: string }): void;
  /** A float checkpoint tensor as a float32 initializer; throws CheckpointError if its shape differs from `shape`. */
  weight(name: string, shape: number[]): string;
  /**
   * Rows `ids` (int64 [tokens]) of the float checkpoint matrix `name` of `shape` [rows, width]: an embedding lookup.
   * A matrix over onnxruntime's 2 GiB limit per initializer (Qwen3-8B's 151936 × 4096 float32 embedding) is held in
   * row blocks and gathered block by block.
   */
  embedding(name: string, shape: [number, number], ids: string): string;
  /**
   * y = x · Wᵀ for a checkpoint linear (weight [out, in]); x is [tokens, in], y [tokens, out].
   * The active quantization method chooses the ops (vLLM's QuantizeMethodBase.apply).
   */
  linear(layer: LinearSpec, x: string): string;
  /**
   * y_i = x · W_iᵀ for linears that read the same x (q/k/v, gate/up), in order. Where their quantization method can
   * run them as one GEMM with the same result (`LinearMethodV1.applyPacked`: one activation quantization, the weights
   * side by side, vLLM's QKVParallelLinear / MergedColumnParallelLinear) it does; otherwise each is `linear`.
   */
  linears(layers: readonly LinearSpec[], x: string): string[];
  /**
   * Causal self-attention of decoder layer `layer` with its KV cache: q [tokens, numHeads·headDim], k and v
   * [tokens, numKvHeads·headDim] (q and k already normed, not yet rotated; any shape holding those values in that
   * order, e.g. [tokens·heads, headDim] straight from a per-head norm). Rotates q and k by their positions, appends
   * k and v to the cache and returns [tokens, numHeads·headDim].
   */
  attention(layer: number, q: string, k: string, v: string, spec: AttentionSpecV1): string;
  /**
   * RMSNorm over the last axis, x / sqrt(mean(x²) + eps) · weight. With `residual`, normalises x + residual and also
   * returns that sum (the new residual stream) — one fused op where the backend has it.
   */
  rmsNorm(x: string, weight: string, eps: number, options?: { residual?: string }): { out: string; sum: string };
}
