import type { GraphBuilder } from '../../graph/graph-builder.js';
import type { LinearSpec } from './model-architecture-v1.js';

/** Names of the graph inputs the engine feeds (see GRAPH_IO). */
export interface GraphInputsV1 {
  inputIds: string;
  positions: string;
  logitsIndices: string;
  pastKeys: string[];
  pastValues: string[];
}

/** What an architecture gets while emitting its graph. */
export interface GraphContextV1 {
  readonly g: GraphBuilder;
  /** Declares the engine's inputs (GRAPH_IO) and returns their value names. Call once. */
  inputs(): GraphInputsV1;
  /** For a single decoder layer's graph (LAYER_IO): declares hidden_states [S, hidden] and positions [S]. */
  layerInputs(): { hidden: string; positions: string };
  /** For a single decoder layer's graph: declares its output. */
  layerOutputs(hidden: string): void;
  /** For the head's graph: declares hidden_states [S, hidden]; the graph's output is `logits` via outputs(). */
  headInput(): string;
  /** Declares the engine's outputs. Call once, at the end. */
  outputs(values: { logits: string; presentKeys: string[]; presentValues: string[] }): void;
  /** A float checkpoint tensor as a float32 initializer; throws CheckpointError if its shape differs from `shape`. */
  weight(name: string, shape: number[]): string;
  /**
   * y = x · Wᵀ for a checkpoint linear (weight [out, in]); x is [tokens, in], y [tokens, out].
   * The active quantization method chooses the ops (vLLM's QuantizeMethodBase.apply).
   */
  linear(layer: LinearSpec, x: string): string;
}
