/**
 * Which int8 GEMM forms run exactly on this CPU, found by running them — not by CPU name. MLAS picks its integer
 * kernels by CPU feature: on AVX2 without VNNI its u8×s8 kernel adds pairs of u8·s8 products into a saturating
 * int16 (`vpmaddubsw`), so activations at 127 against weights at ±127 come out wrong; with VNNI (VPDPBUSD) or in
 * the u8×u8 and s8×s8 forms the sums are exact. The probe runs the graph every int8 linear emits
 * (`emitInt8MatMul`, static and per-token) on extreme values, where any saturation shows.
 */
import { emitInt8MatMul, GraphBuilder, INT8_GEMM_FORMS, type BackendSessionV1, type BuiltModel, type Int8GemmForm } from '@qllm/core';

/** Reduction length of the probe (a multiple of every kernel's K block, and ≥ 1024 as the weights of real layers). */
const K = 1024;
/** Output columns: each a different extreme pattern. */
const N = 8;

/** Weight column n at position k: ±127, −128 and alternating signs, the patterns that saturate int16 pair sums. */
function probeWeight(n: number, k: number): number {
  switch (n) {
    case 0: return 127;
    case 1: return -128;
    case 2: return k % 2 ? 127 : -127;
    case 3: return k % 4 < 2 ? 127 : -128;
    default: return ((k * 7919 + n * 104729) % 255) - 127; // spread over the whole range
  }
}

/**
 * Activation row m at position k, logical int8 values: row 0 all 127, row 1 all at the bottom of the range (−128
 * for static quantization; −127 per token, which is symmetric), the others mixed extremes.
 */
function probeActivation(m: number, k: number, low: number): number {
  if (m === 0) return 127;
  if (m === 1) return low;
  return (k + m) % 3 === 0 ? 127 : (k + m) % 3 === 1 ? low : ((k * 31 + m * 17) % 255) - 127;
}

/** The activations, and the exact Σ_k a[m,k]·W[n,k] for every (m, n). */
function probeCase(rows: number, low: number): { x: Float32Array; exact: Float64Array } {
  const x = new Float32Array(rows * K);
  for (let m = 0; m < rows; m++) for (let k = 0; k < K; k++) x[m * K + k] = probeActivation(m, k, low);
  const exact = new Float64Array(rows * N);
  for (let m = 0; m < rows; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * probeWeight(n, k);
      exact[m * N + n] = s;
    }
  }
  return { x, exact };
}

/** The probe graph in one form: y_static and y_token for the same x (scales 1, zero point 0, so y is the integer sum). */
export async function buildProbe(form: Int8GemmForm): Promise<BuiltModel> {
  const g = new GraphBuilder('int8-probe');
  const x = g.input('x_static', 'float32', ['m', K]);
  const xt = g.input('x_token', 'float32', ['m', K]);
  const weight = () => {
    const w = new Int8Array(K * N); // [K, N], as the lowering wants it
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) w[k * N + n] = probeWeight(n, k);
    return w;
  };
  const weightScale = g.constant('float32', [N], new Array<number>(N).fill(1), 'w_scale');
  const staticY = emitInt8MatMul(g, form, {
    x,
    activation: { scale: g.scalar(1), zeroPoint: { name: 'a_zp', value: async () => 0 } },
    weight: { name: 'w_static', shape: [K, N], data: async () => weight() },
    weightScale,
  });
  const tokenY = emitInt8MatMul(g, form, { x: xt, activation: 'per-token', weight: { name: 'w_token', shape: [K, N], data: async () => weight() }, weightScale });
  g.output(staticY, 'y_static', 'float32', ['m', N]);
  g.output(tokenY, 'y_token', 'float32', ['m', N]);
  return g.build();
}

/** Runs the probe in one session: '' when exact, else what differed. M = 1 and M = 6 (GEMV- and GEMM-shaped calls). */
export async function runProbe(session: BackendSessionV1): Promise<string> {
  for (const rows of [1, 6]) {
    const cases = { y_static: probeCase(rows, -128), y_token: probeCase(rows, -127) };
    const out = await session.run({
      x_static: { dtype: 'F32', shape: [rows, K], data: cases.y_static.x },
      x_token: { dtype: 'F32', shape: [rows, K], data: cases.y_token.x },
    });
    for (const name of ['y_static', 'y_token'] as const) {
      const expected = cases[name].exact;
      const y = session.toHost(out[name]!).data as Float32Array;
      for (let i = 0; i < expected.length; i++) {
        if (y[i] !== expected[i]) {
          return `${name === 'y_static' ? 'static' : 'per-token'} M=${rows} K=${K}: row ${Math.floor(i / N)} column ${i % N} ` +
            `gave ${y[i]}, exact ${expected[i]}`;
        }
      }
    }
  }
  return '';
}

export interface Int8ProbeResult {
  /** '' where the form was exact, otherwise the first wrong value (or the error that stopped it). */
  verdict: Readonly<Record<Int8GemmForm, string>>;
}

/** Probe every form with sessions made by `createSession`. */
export async function probeInt8Forms(createSession: (model: BuiltModel) => Promise<BackendSessionV1>): Promise<Int8ProbeResult> {
  const verdict = {} as Record<Int8GemmForm, string>;
  for (const form of INT8_GEMM_FORMS) {
    try {
      const session = await createSession(await buildProbe(form));
      try {
        verdict[form] = await runProbe(session);
      } finally {
        await session.dispose();
      }
    } catch (e) {
      verdict[form] = `did not run: ${(e as Error).message}`;
    }
  }
  return { verdict };
}
