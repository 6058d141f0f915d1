/** What quantization did to the model: per-layer relative output error, and end-to-end top-1 agreement and KL. */
import {
  createGraphContext, GRAPH_IO, LAYER_IO, linearWeightName, toFloat32, type BackendV1, type HostTensor, type LinearMethodV1,
  type LinearSpec, type ModelArchitectureV1, type ModelConfigV1, type TensorSource,
} from '@qllm/core';

export interface FidelityReport {
  method: string;
  calibrationSamples: number;
  calibrationTokens: number;
  /** Whether the evaluation samples were held out of calibration (false when there was only one sample). */
  heldOut: boolean;
  evalSamples: number;
  evalTokens: number;
  /** ‖y_q − y_f‖ / ‖y_f‖ of each decoder layer's output, the quantized layer given the float layer's input. */
  layers: Array<{ layer: number; relativeError: number }>;
  /** Share of positions where the quantized model's most likely next token is the float model's. */
  top1Agreement: number;
  /** Mean over positions of KL(p_float ‖ p_quantized), in nats. */
  meanKl: number;
  warnings: string[];
  wallSeconds: number;
}

/** Sums for a relative L2 error accumulated over samples: sqrt(Σnum / Σden). */
export function relativeError(got: Float32Array, want: Float32Array): { num: number; den: number } {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i]! - want[i]!;
    num += d * d;
    den += want[i]! * want[i]!;
  }
  return { num, den };
}

/** Head rows per pass: the head's weight streams through in float32 blocks of this many rows. */
const HEAD_BLOCK = 16384;

/**
 * Run both final hidden-state streams through the float head and compare the next-token distributions.
 * The head weight (151936 × hidden for Qwen3) is fed to the graph in row blocks rather than held as a float32
 * initializer, and KL, log-sum-exp and argmax are accumulated online, so memory stays one block.
 */
export async function endToEndFidelity(
  o: { architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1; checkpoint: TensorSource; backend: BackendV1; threads?: number },
  floatHidden: Float32Array[],
  quantHidden: Float32Array[],
): Promise<{ top1Agreement: number; meanKl: number }> {
  let head: LinearSpec | undefined;
  const streamed: LinearMethodV1 = {
    apply(ctx, layer, x) {
      head = layer;
      return ctx.g.op('Gemm', [x, ctx.g.input(HEAD_WEIGHT, 'float32', ['rows', layer.inFeatures])], { transB: 1 });
    },
  };
  const ctx = createGraphContext({ checkpoint: o.checkpoint, config: o.config, linearMethod: (l) => (l.layer === -1 ? streamed : null) });
  o.architecture.buildHeadGraph(ctx, o.config);
  if (!head) throw new Error(`${o.config.architecture}: its head graph has no linear layer to stream`);
  const session = await o.backend.createSession(await ctx.g.build(), { threads: o.threads });
  const H = o.config.hiddenSize;
  const V = head.outFeatures;
  const weight = await o.checkpoint.read(linearWeightName(head));
  const positions = floatHidden.reduce((a, h) => a + h.length / H, 0);
  const f = new OnlineSoftmax(positions);
  const q = new OnlineSoftmax(positions);
  const acc = new Float64Array(positions); // Σ exp(z_f − m_f)·(z_f − z_q), rescaled with m_f
  try {
    for (let first = 0; first < V; first += HEAD_BLOCK) {
      const rows = Math.min(HEAD_BLOCK, V - first);
      const block = toFloat32({ ...weight, shape: [rows, H], data: weight.data.subarray(first * H, (first + rows) * H) } as HostTensor);
      const logits = async (h: Float32Array) => {
        const out = await session.run({
          [LAYER_IO.hidden]: { dtype: 'F32', shape: [h.length / H, H], data: h },
          [HEAD_WEIGHT]: { dtype: 'F32', shape: [rows, H], data: block },
        });
        return session.toHost(out[GRAPH_IO.logits]!).data as Float32Array;
      };
      let t0 = 0;
      for (const [s, hf] of floatHidden.entries()) {
        const zf = await logits(hf);
        const zq = await logits(quantHidden[s]!);
        for (let t = 0; t < hf.length / H; t++) {
          const rowF = zf.subarray(t * rows, (t + 1) * rows);
          const rowQ = zq.subarray(t * rows, (t + 1) * rows);
          const scale = f.add(t0 + t, rowF, first);
          q.add(t0 + t, rowQ, first);
          let sum = 0;
          const m = f.max[t0 + t]!;
          for (let v = 0; v < rows; v++) sum += Math.exp(rowF[v]! - m) * (rowF[v]! - rowQ[v]!);
          acc[t0 + t] = acc[t0 + t]! * scale + sum;
        }
        t0 += hf.length / H;
      }
    }
  } finally {
    await session.dispose();
  }
  let kl = 0;
  let agree = 0;
  for (let t = 0; t < positions; t++) {
    kl += acc[t]! / f.sum[t]! - f.logSumExp(t) + q.logSumExp(t);
    agree += f.argmax[t] === q.argmax[t] ? 1 : 0;
  }
  return { top1Agreement: agree / positions, meanKl: kl / positions };
}

const HEAD_WEIGHT = 'head_weight_block';

/** Per position: running max, Σ exp(z − max) and argmax over blocks of logits. */
class OnlineSoftmax {
  readonly max: Float64Array;
  readonly sum: Float64Array;
  readonly argmax: Int32Array;
  constructor(positions: number) {
    this.max = new Float64Array(positions).fill(-Infinity);
    this.sum = new Float64Array(positions);
    this.argmax = new Int32Array(positions);
  }

  /** Fold in one block (token ids first…); returns the factor the old sums were rescaled by. */
  add(t: number, z: Float32Array, first: number): number {
    let m = this.max[t]!;
    let best = -1;
    for (let v = 0; v < z.length; v++) if (z[v]! > m) { m = z[v]!; best = v; }
    if (best >= 0) this.argmax[t] = first + best;
    const scale = Math.exp(this.max[t]! - m);
    let s = 0;
    for (let v = 0; v < z.length; v++) s += Math.exp(z[v]! - m);
    this.sum[t] = this.sum[t]! * scale + s;
    this.max[t] = m;
    return scale;
  }

  logSumExp(t: number): number {
    return this.max[t]! + Math.log(this.sum[t]!);
  }
}

/** The fidelity table printed at the end of `qllm quantize`. */
export function formatFidelityTable(r: FidelityReport): string {
  const lines = [
    `SmoothQuant fidelity (${r.evalSamples} ${r.heldOut ? 'held-out' : 'calibration'} samples, ${r.evalTokens} tokens; calibrated on ${r.calibrationSamples} samples, ${r.calibrationTokens} tokens)`,
    '',
    '| layer | relative output error |',
    '|---:|---:|',
    ...r.layers.map((l) => `| ${l.layer} | ${l.relativeError.toExponential(3)} |`),
    '',
    `end to end: top-1 agreement ${(100 * r.top1Agreement).toFixed(2)}%, mean KL ${r.meanKl.toExponential(3)} nats`,
    `wall time ${r.wallSeconds.toFixed(1)} s`,
  ];
  return lines.join('\n');
}
