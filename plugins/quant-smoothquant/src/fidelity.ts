/** What quantization did to the model: per-layer relative output error, and end-to-end top-1 agreement and KL. */
import {
  createGraphContext, GRAPH_IO, LAYER_IO, type BackendV1, type ModelArchitectureV1, type ModelConfigV1, type TensorSource,
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

function logSoftmax(row: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of row) if (x > m) m = x;
  let s = 0;
  for (const x of row) s += Math.exp(x - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

/** Run both final hidden-state streams through the (float) head and compare the next-token distributions. */
export async function endToEndFidelity(
  o: { architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1; checkpoint: TensorSource; backend: BackendV1; threads?: number },
  floatHidden: Float32Array[],
  quantHidden: Float32Array[],
): Promise<{ top1Agreement: number; meanKl: number }> {
  const ctx = createGraphContext({ checkpoint: o.checkpoint, config: o.config, linearMethod: () => null });
  o.architecture.buildHeadGraph(ctx, o.config);
  const session = await o.backend.createSession(await ctx.g.build(), { threads: o.threads });
  const H = o.config.hiddenSize;
  const V = o.config.vocabSize;
  const logits = async (h: Float32Array) => {
    const out = await session.run({ [LAYER_IO.hidden]: { dtype: 'F32', shape: [h.length / H, H], data: h } });
    return session.toHost(out[GRAPH_IO.logits]!).data as Float32Array;
  };
  let agree = 0;
  let kl = 0;
  let positions = 0;
  try {
    for (const [s, hf] of floatHidden.entries()) {
      const lf = await logits(hf);
      const lq = await logits(quantHidden[s]!);
      for (let t = 0; t < hf.length / H; t++) {
        const pf = logSoftmax(lf.subarray(t * V, (t + 1) * V));
        const pq = logSoftmax(lq.subarray(t * V, (t + 1) * V));
        let bestF = 0;
        let bestQ = 0;
        let d = 0;
        for (let v = 0; v < V; v++) {
          if (pf[v]! > pf[bestF]!) bestF = v;
          if (pq[v]! > pq[bestQ]!) bestQ = v;
          d += Math.exp(pf[v]!) * (pf[v]! - pq[v]!);
        }
        agree += bestF === bestQ ? 1 : 0;
        kl += d;
        positions++;
      }
    }
  } finally {
    await session.dispose();
  }
  return { top1Agreement: agree / positions, meanKl: kl / positions };
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
