/**
 * A weight-only int8 head (llama.cpp's Q8_0 head, in per-row form): the float head's weight quantized when the graph
 * is written, one symmetric scale per output row (s_w[n] = max_k |W[n, k]| / 127, q = round(W / s_w)), run by the
 * same exact int8 GEMM as the quantized linears (ties round to even) with the activation quantized per token (s_t = max|x_t| / 127).
 * A head reads a quarter of the float32 bytes (a 151936-row head: 155 MB instead of 622 MB at hidden 1024).
 *
 * It is an option, not the checkpoint's math: Golden Stick and llm-compressor leave lm_head in float, so a quantized
 * checkpoint's head runs in float unless the user asks (`lmHead: 'int8'`); its fidelity is its own line in
 * BENCHMARKS.md ("Head options").
 */
import { CheckpointError } from '../errors.js';
import { bf16ToF32, f16ToF32, type HostTensor } from '../tensor/dtype.js';
import { roundHalfEven } from '../tensor/round.js';
import type { LinearContextV1, LinearMethodV1 } from '../quantizer/v1/quantization-method-v1.js';
import type { LinearSpec } from '../model/v1/model-architecture-v1.js';

/** Rows converted to float at a time while quantizing (bounds the float scratch, whatever the head's size). */
const ROWS_PER_CHUNK = 256;

/** Quantize W [out, in] per row; returns Wᵀ as int8 [in, out] (the kernel's layout) and the row scales. */
export function quantizeRowsInt8(t: HostTensor, out: number, inF: number): { weightT: Int8Array; scales: Float32Array } {
  const weightT = new Int8Array(out * inF);
  const scales = new Float32Array(out);
  const scratch = new Float32Array(ROWS_PER_CHUNK * inF);
  for (let r0 = 0; r0 < out; r0 += ROWS_PER_CHUNK) {
    const rows = Math.min(ROWS_PER_CHUNK, out - r0);
    const x = rowsAsFloat(t, r0 * inF, rows * inF, scratch);
    for (let r = 0; r < rows; r++) {
      let max = 0;
      for (let k = 0; k < inF; k++) max = Math.max(max, Math.abs(x[r * inF + k]!));
      const s = max / 127;
      scales[r0 + r] = s;
      const n = r0 + r;
      for (let k = 0; k < inF; k++) weightT[k * out + n] = Math.max(-127, Math.min(127, s > 0 ? roundHalfEven(x[r * inF + k]! / s) : 0));
    }
  }
  return { weightT, scales };
}

function rowsAsFloat(t: HostTensor, start: number, length: number, scratch: Float32Array<ArrayBuffer>): Float32Array {
  const dst = scratch.subarray(0, length);
  switch (t.dtype) {
    case 'BF16': return bf16ToF32((t.data as Uint16Array).subarray(start, start + length), dst);
    case 'F16': return f16ToF32((t.data as Uint16Array).subarray(start, start + length), dst);
    case 'F32':
    case 'F64':
      for (let i = 0; i < length; i++) dst[i] = Number(t.data[start + i]);
      return dst;
    default: throw new TypeError(`quantizeRowsInt8: ${t.dtype} is not a float dtype`);
  }
}

/** The weight-only int8 head (see the file comment). */
export const int8WeightOnlyHead: LinearMethodV1 = {
  apply(ctx: LinearContextV1, layer: LinearSpec, x: string): string {
    const name = layer.weight ?? `${layer.name}.weight`;
    const info = ctx.checkpoint.info(name);
    const { outFeatures: out, inFeatures: inF } = layer;
    if (info.shape[0] !== out || info.shape[1] !== inF || !['BF16', 'F16', 'F32', 'F64'].includes(info.dtype)) {
      throw new CheckpointError(`${info.file}: tensor '${name}' is [${info.shape}] ${info.dtype}; an int8 head needs a float [${out}, ${inF}]`, info.file, name);
    }
    // One pass makes both initializers; the result is dropped once both have taken their part.
    let pending: Promise<{ weightT: Int8Array; scales: Float32Array }> | undefined;
    let takers = 0;
    const take = async () => {
      pending ??= ctx.checkpoint.read(name).then((t) => quantizeRowsInt8(t, out, inF));
      const result = await pending;
      if (++takers === 2) pending = undefined;
      return result;
    };
    const weightScale = ctx.g.initializer(`${name}.int8_scale`, 'float32', [out], async () => (await take()).scales);
    return ctx.int8MatMul({
      x,
      activation: 'per-token',
      mayBeEmpty: true, // a prefill chunk that needs no logits feeds the head no rows
      weight: { name: `${name}.int8.T`, shape: [inF, out], data: async () => (await take()).weightT },
      weightScale,
    });
  },
};
