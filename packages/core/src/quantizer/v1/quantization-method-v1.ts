import type { Int8MatMulSpec } from '../../graph/int8-matmul.js';
import type { TensorSource } from '../../tensor/tensor-source.js';
import type { HostTensor } from '../../tensor/dtype.js';
import type { LinearSpec, ModelArchitectureV1, ModelConfigV1 } from '../../model/v1/model-architecture-v1.js';
import type { GraphOpsV1 } from '../../model/v1/graph-context-v1.js';

/** What a linear method may use while lowering one linear layer. */
export interface LinearContextV1 {
  readonly g: GraphOpsV1;
  readonly checkpoint: TensorSource;
  /** A float checkpoint tensor as a float32 initializer, shape-checked. */
  floatWeight(name: string, shape: number[]): string;
  /** Rows [first, first + count) of a float checkpoint tensor of `shape`, as a float32 initializer (no copy). */
  floatWeightRows(name: string, shape: number[], first: number, count: number): string;
  /**
   * y = s_a · s_w · ((q − z_a) · Wᵀ) for int8 activations q and int8 weights W, exact in integers: the method
   * states the math, and the lowering uses the integer form the backend runs exactly on this CPU.
   */
  int8MatMul(spec: Int8MatMulSpec): string;
  /**
   * A checkpoint tensor of at most 64 values (a scale, a zero point), read before the graph is built so a method can
   * decide the graph's shape by it; undefined when absent or not read ahead (`readSmallTensors`).
   */
  smallTensor(name: string): HostTensor | undefined;
}

/** How one linear layer is lowered into graph ops. */
export interface LinearMethodV1 {
  /** Returns y = x · Wᵀ (approximately, for quantized methods); x is [tokens, in]. */
  apply(ctx: LinearContextV1, layer: LinearSpec, x: string): string;
  /**
   * Linears that read the same x (all of them given to this method) as one GEMM, each output exactly what `apply`
   * would give; null when they cannot be (then each is applied alone).
   */
  applyPacked?(ctx: LinearContextV1, layers: readonly LinearSpec[], x: string): string[] | null;
}

/** A model folder whose config.json has no quantization_config, as a method sees it when asked to recognise it. */
export interface CheckpointFolderV1 {
  dir: string;
  /** config.json. */
  config: Record<string, unknown>;
  checkpoint: TensorSource;
}

/** A checkpoint a method recognised by more than config.json (its tensor names, a description file). */
export interface RecognizedCheckpointV1 {
  /** Which layout it is (e.g. 'golden-stick'), for messages. */
  layout: string;
  /** Stands for config.json's quantization_config: what getLinearMethod receives. */
  quantizationConfig: Record<string, unknown>;
  /** The checkpoint as the architecture names it (e.g. MindFormers names read under HF names). */
  checkpoint: TensorSource;
}

/** A quantization method plugin's online half (vLLM's QuantizationConfig). */
export interface QuantizationMethodV1 {
  readonly specificationVersion: 'v1';
  readonly name: string;
  /** Whether a checkpoint's config.json `quantization_config` was written by this method. */
  recognizes(quantizationConfig: Record<string, unknown>): boolean;
  /** The method for one linear layer of a loaded model (null: leave it unquantized). */
  getLinearMethod(layer: LinearSpec, model: { config: ModelConfigV1; quantizationConfig?: Record<string, unknown> }): LinearMethodV1 | null;
  /**
   * Recognise a checkpoint whose config.json has no quantization_config (e.g. Golden Stick's MindFormers layout, by
   * its tensor names), once per load; undefined when it is not this method's.
   */
  recognizeFolder?(
    folder: CheckpointFolderV1,
    model: { architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1 },
  ): Promise<RecognizedCheckpointV1 | undefined>;
  /** The offline half, for methods that quantize checkpoints themselves. */
  quantize?(options: OfflineQuantizeOptionsV1): Promise<OfflineQuantizeResultV1>;
}

/** Options of a method's offline half (calibrate → quantize → write a checkpoint). */
export interface OfflineQuantizeOptionsV1 {
  /** The float model folder. */
  model: string;
  /** The folder to write (atomically). */
  output: string;
  /** The method's own configuration (for SmoothQuant: Golden Stick's PTQConfig, camelCase). */
  config?: Record<string, unknown>;
  /** Per-layer overrides, an ordered map regex → config (merged into config.layerPolicies). */
  layerPolicies?: Record<string, Record<string, unknown>>;
  /** Calibration data: literal texts, text/JSONL files, a CEval split folder. */
  calibration?: { texts?: string[]; files?: string[]; ceval?: string };
  numSamples?: number;
  maxSeqLen?: number;
  overwrite?: boolean;
  threads?: number;
  /** Backend used for calibration. */
  backend?: string;
  onProgress?: (p: { layer: number; numLayers: number; sample: number; numSamples: number }) => void;
  log?: (message: string) => void;
}

export interface OfflineQuantizeResultV1 {
  output: string;
  /** The method's report (also saved in the output folder). */
  report: Record<string, unknown>;
  /** A human-readable summary table. */
  summary: string;
  warnings: string[];
}
