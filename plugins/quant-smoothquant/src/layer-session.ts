/**
 * One decoder layer as its own onnxruntime session (LAYER_IO), for layer-by-layer calibration: run every sample
 * through it, optionally recording per input channel the min and max of every linear layer's input.
 */
import {
  createGraphContext, LAYER_IO, unquantizedLinear, type BackendV1, type LinearMethodV1, type LinearSpec,
  type ModelArchitectureV1, type ModelConfigV1, type TensorSource, type BackendSessionV1,
} from '@qllm/core';

export interface ChannelRange {
  min: Float32Array;
  max: Float32Array;
}

export interface LayerSessionOptions {
  architecture: ModelArchitectureV1<ModelConfigV1>;
  config: ModelConfigV1;
  checkpoint: TensorSource;
  layer: number;
  backend: BackendV1;
  threads?: number;
  /** How each linear is lowered (null: float). */
  linearMethod?: (layer: LinearSpec) => LinearMethodV1 | null;
  /** Record the input range of every linear. */
  observe?: boolean;
}

const statName = (layer: string, which: 'min' | 'max') => `stats.${layer}.${which}`;

export class LayerSession {
  private constructor(
    private readonly session: BackendSessionV1,
    private readonly observed: LinearSpec[],
    private readonly hiddenSize: number,
  ) {}

  static async create(o: LayerSessionOptions): Promise<LayerSession> {
    const observed: LinearSpec[] = [];
    const observing: LinearMethodV1 = {
      apply(ctx, layer, x) {
        const { g } = ctx;
        for (const which of ['min', 'max'] as const) {
          const reduced = g.op(which === 'min' ? 'ReduceMin' : 'ReduceMax', [x, g.ints([0])], { keepdims: 0 });
          g.output(reduced, statName(layer.name, which), 'float32', [layer.inFeatures]);
        }
        observed.push(layer);
        return (o.linearMethod?.(layer) ?? unquantizedLinear).apply(ctx, layer, x);
      },
    };
    const ctx = createGraphContext({
      checkpoint: o.checkpoint,
      config: o.config,
      int8Form: o.linearMethod ? (await o.backend.int8GemmForm?.())?.form : undefined,
      supportsOp: (domain, op) => o.backend.supportsOp(domain, op),
      linearMethod: o.observe ? () => observing : (l) => o.linearMethod?.(l) ?? null,
    });
    o.architecture.buildLayerGraph(ctx, o.config, o.layer);
    const session = await o.backend.createSession(await ctx.g.build(), { threads: o.threads });
    return new LayerSession(session, observed, o.config.hiddenSize);
  }

  /** Run one sample ([tokens, hidden]); the stats of the observed linears widen `ranges` in place. */
  async run(hidden: Float32Array, ranges?: Map<string, ChannelRange>): Promise<Float32Array> {
    const tokens = hidden.length / this.hiddenSize;
    const out = await this.session.run({
      [LAYER_IO.hidden]: { dtype: 'F32', shape: [tokens, this.hiddenSize], data: hidden },
    });
    if (ranges) {
      for (const layer of this.observed) {
        const min = this.session.toHost(out[statName(layer.name, 'min')]!).data as Float32Array;
        const max = this.session.toHost(out[statName(layer.name, 'max')]!).data as Float32Array;
        const r = ranges.get(layer.name);
        if (!r) {
          ranges.set(layer.name, { min: min.slice(), max: max.slice() });
          continue;
        }
        for (let k = 0; k < min.length; k++) {
          if (min[k]! < r.min[k]!) r.min[k] = min[k]!;
          if (max[k]! > r.max[k]!) r.max[k] = max[k]!;
        }
      }
    }
    return (this.session.toHost(out[LAYER_IO.hiddenOut]!).data as Float32Array).slice();
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}
