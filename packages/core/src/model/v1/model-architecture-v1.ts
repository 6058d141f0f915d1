import type { GraphContextV1 } from './graph-context-v1.js';

/** What the engine needs to know of any architecture's config (its own config type extends this). */
export interface ModelConfigV1 {
  architecture: string;
  hiddenSize: number;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  /** The dtype the checkpoint was saved in ('bfloat16', 'float16', 'float32'). */
  torchDtype: string;
}

export interface TensorSpec {
  name: string;
  shape: number[];
  /** May be absent (e.g. lm_head.weight of a tied model). */
  optional?: boolean;
}

/** A linear layer as the checkpoint names it (its [out, in] matrix is `weight`, by default `${name}.weight`). */
export interface LinearSpec {
  name: string;
  /** The tensor holding the matrix when it is not `${name}.weight` (a tied lm_head uses the embedding). */
  weight?: string;
  inFeatures: number;
  outFeatures: number;
  /** Decoder layer index, or -1 outside the decoder stack (lm_head). */
  layer: number;
}

/**
 * Where SmoothQuant can fold a per-input-channel factor s of `linears` (which share one input) so the checkpoint
 * stays a plain one: into a norm whose output is that input (norm.weight / s, llm-compressor's mappings), or into
 * the output rows of the linear that produces it (producer rows / s, as AWQ's v_proj → o_proj). Consumer input
 * channel c comes from producer output channel producerChannel(c); channels sharing one share s.
 */
export type SmoothMapping =
  | { norm: string; linears: LinearSpec[] }
  | { producer: LinearSpec; producerChannel: (inputChannel: number) => number; linears: LinearSpec[] };

/**
 * One entry of an architecture's name table: a linear layer or a plain tensor under each checkpoint layout's naming.
 * Linear entries name the module (a layout adds its own tensor suffixes, e.g. `.weight`, `._layer.weight`); tensor
 * entries name the whole tensor.
 */
export interface TensorNameV1 {
  /** Layout-independent name, e.g. 'layers.3.attention.q'. */
  logical: string;
  kind: 'linear' | 'tensor';
  /** The Hugging Face name (the one the graph reads). */
  hf: string;
  /** The MindFormers name (Golden Stick's checkpoints). */
  mindformers: string;
}

/** A model architecture plugin (vLLM's model class): parses its config, names its weights, emits its graph. */
export interface ModelArchitectureV1<C extends ModelConfigV1 = ModelConfigV1> {
  readonly specificationVersion: 'v1';
  /** The Hugging Face `architectures[0]` name, e.g. 'Qwen3ForCausalLM'. */
  readonly name: string;
  /** Validate and normalise config.json; throws ConfigError naming `file` and the field. */
  parseConfig(raw: Record<string, unknown>, file: string): C;
  /** Every tensor the checkpoint holds, with shapes derived from the config. */
  expectedTensors(config: C): TensorSpec[];
  /** Every linear layer, in execution order. */
  linearLayers(config: C): LinearSpec[];
  /** Emit the forward graph into ctx (graph I/O per GRAPH_IO). Must never branch on quantization or device. */
  buildGraph(ctx: GraphContextV1, config: C): void;
  /** Emit decoder layer `layer` alone (graph I/O per LAYER_IO), for layer-by-layer calibration. */
  buildLayerGraph(ctx: GraphContextV1, config: C, layer: number): void;
  /** Decoder layer 0's input for token ids: the rows of this [vocab, hidden] embedding matrix. */
  embeddingWeight(config: C): string;
  /** Per decoder layer, where a smoothing factor on the inputs of some linears can be folded (see SmoothMapping). */
  smoothMappings(config: C, layer: number): SmoothMapping[];
  /** Emit the part after the decoder stack alone: LAYER_IO hidden_states [S, hidden] in, `logits` [S, vocab] out. */
  buildHeadGraph(ctx: GraphContextV1, config: C): void;
  /** The name table: every tensor and linear layer under the HF and MindFormers names (for other layouts' readers and writers). */
  tensorNames?(config: C): TensorNameV1[];
}
