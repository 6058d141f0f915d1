import type { HostTensor } from '../../tensor/dtype.js';
import type { BuiltModel } from '../../graph/graph-builder.js';

/** A value that lives with the backend (e.g. a KV cache tensor); opaque to the engine. */
export type BackendValue = { readonly __backendValue: true } | object;

export interface BackendSessionOptions {
  /** Intra-op threads (default: all cores). */
  threads?: number;
}

export interface BackendSessionV1 {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Run the graph. Feeds are host tensors or values a previous run returned. */
  run(feeds: Record<string, HostTensor | BackendValue>): Promise<Record<string, BackendValue>>;
  /** Copy a backend value to host memory. */
  toHost(value: BackendValue): HostTensor;
  /** Release a value the engine no longer needs (e.g. the previous step's KV cache). */
  release(value: BackendValue): void;
  dispose(): Promise<void>;
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
  isAvailable(): Promise<BackendAvailability>;
  /** Higher wins when no backend is named (detect → score → pick one). */
  score(): number;
  /** Whether the backend runs this op (lets the graph prefer fused ops where they exist). */
  supportsOp(domain: string, opType: string): boolean;
  createSession(model: BuiltModel, options?: BackendSessionOptions): Promise<BackendSessionV1>;
}
