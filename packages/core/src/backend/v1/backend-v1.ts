import type { HostTensor } from '../../tensor/dtype.js';
import type { BuiltModel } from '../../graph/graph-builder.js';
import type { RemoteEngineOptionsV1, RemoteEngineV1 } from './remote-engine-v1.js';

/** A value that lives with the backend (e.g. a KV cache tensor); opaque to the engine. */
export type BackendValue = { readonly __backendValue: true } | object;

export interface BackendSessionOptions {
  /** Intra-op threads (default: all cores). */
  threads?: number;
}

/**
 * A buffer that lives with the backend across runs (the KV cache): zero-filled at allocation, row-major, with rows
 * along axis 0 (the cache's sequence slots) and [heads, positions, width] in each row. Views of its rows are fed to
 * runs as inputs, never copied; a run's new entries are written into it with `writePositions`.
 *
 * `shape[2]` is the capacity of a row; `positions` (≤ capacity) is how many positions per head the rows are laid
 * out with now, and so the length of the views a run reads. The engine keeps it just above the longest sequence
 * (`setPositions`), so a kernel that reads or copies the whole view (GroupQueryAttention copies its past into its
 * present) costs what the sequences hold, not the capacity.
 */
export interface BackendBufferV1 {
  readonly dtype: 'F32' | 'F16';
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Positions per head in the current layout (starts at `shape[2]`). */
  readonly positions: number;
  /**
   * Re-lay every row with `positions` positions per head, in place, keeping each head's first min(old, new)
   * positions — or only the first `keep[row]` of each row where `keep` is given (0: nothing of that row is moved).
   * Views handed out before are stale afterwards.
   */
  setPositions(positions: number, keep?: readonly number[]): void;
  /**
   * Rows [first, first + count) along axis 0, as a value to feed: [count, heads, positions, width]. The same rows in
   * the same layout give the same object.
   */
  rows(first: number, count: number): BackendValue;
  /**
   * Write `source` (a run's output [batch, heads, S, width] of this buffer's dtype) row `sourceRow` into row `row` at
   * positions [position, position + S).
   */
  writePositions(row: number, position: number, source: BackendValue, sourceRow: number): void;
  /** Copy positions [0, length) of row `src` into row `dst` (a forked sequence's cached prompt). */
  copyPositions(src: number, dst: number, length: number): void;
}

export interface BackendSessionV1 {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Run the graph. Feeds are host tensors, values a previous run returned, or a buffer's row views. */
  run(feeds: Record<string, HostTensor | BackendValue>): Promise<Record<string, BackendValue>>;
  /** A persistent zero-filled buffer (throws a clear error when the memory cannot be had). */
  allocate(dtype: 'F32' | 'F16', shape: readonly number[]): BackendBufferV1;
  /** Copy a backend value to host memory. */
  toHost(value: BackendValue): HostTensor;
  /** Release a value the engine no longer needs (e.g. the previous step's KV cache). */
  release(value: BackendValue): void;
  dispose(): Promise<void>;
}

/**
 * How an int8 GEMM is fed to the backend's kernel: activation type × weight type. The math is the same in every
 * form (Σ_k (a_k − z_a)·w_k, exact in int32); the forms differ in which kernel runs it and whether that kernel is
 * exact on this CPU (e.g. MLAS's u8×s8 kernel on AVX2 without VNNI adds u8·s8 pairs into a saturating int16).
 *   u8s8: activations uint8 (logical int8 + 128), weights int8
 *   u8u8: activations uint8, weights uint8 (int8 + 128, with weight zero point 128)
 *   s8s8: activations int8, weights int8
 */
export type Int8GemmForm = 'u8s8' | 'u8u8' | 's8s8';

export const INT8_GEMM_FORMS: readonly Int8GemmForm[] = ['u8s8', 'u8u8', 's8s8'];

/** A backend's int8 GEMM choice and the evidence for it (what `qllm env` prints). */
export interface Int8GemmChoice {
  form: Int8GemmForm;
  /** Why this form: the probe's verdict, or a forcing setting. */
  reason: string;
  /** Which forms the backend's probe found exact on this machine. */
  exact: Readonly<Record<Int8GemmForm, boolean>>;
}

/** What a probe may be told: the model folder about to run, so a message can say how to run it elsewhere. */
export interface BackendProbeOptions {
  model?: string;
}

export interface BackendAvailability {
  available: boolean;
  /** Why not, when unavailable (e.g. 'no Ascend NPU: /dev/davinci0 not found'). */
  reason?: string;
}

/** A backend plugin: runs a built graph on one device kind. */
export interface BackendV1 {
  readonly specificationVersion: 'v1';
  readonly name: string;
  isAvailable(options?: BackendProbeOptions): Promise<BackendAvailability>;
  /** Higher wins when no backend is named (detect → score → pick one). */
  score(): number;
  /** Whether the backend runs this op (lets the graph prefer fused ops where they exist). */
  supportsOp(domain: string, opType: string): boolean;
  createSession(model: BuiltModel, options?: BackendSessionOptions): Promise<BackendSessionV1>;
  /**
   * The int8 GEMM form graphs for this backend must use, decided once per process from a probe of the kernels'
   * exactness (not from a CPU-name list). Backends without int8 GEMMs omit it; an int8 linear then fails to build.
   */
  int8GemmForm?(): Promise<Int8GemmChoice>;
  /** Facts for bug reports (`qllm env`): device, features, library versions, as label → value. */
  describe?(): Promise<Record<string, string>>;
  /**
   * A backend that runs models in a server rather than as a graph in this process (vLLM-MindSpore on an Ascend NPU)
   * has this: `LLM` then drives the server through it (generate, stream, chat keep their semantics; the tokenizer,
   * stop strings and outputs stay with the LLM) instead of building a graph. With `options.server` it attaches to that
   * server; otherwise it starts one where it can. Such a backend's createSession throws.
   */
  createRemoteEngine?(options: RemoteEngineOptionsV1): Promise<RemoteEngineV1>;
}
