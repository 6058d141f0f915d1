import type { DType, HostTensor } from './dtype.js';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** The file that holds it (for error messages). */
  file: string;
}

/**
 * Read-only, lazy access to a checkpoint's tensors: nothing is read until `read` is called.
 * Implemented by the safetensors reader (one file or an index of shards).
 */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  /** Throws CheckpointError naming the tensor (and the checkpoint) when absent. */
  info(name: string): TensorInfo;
  /** Reads one tensor by offset. Throws CheckpointError naming file and tensor on any inconsistency. */
  read(name: string): Promise<HostTensor>;
}
