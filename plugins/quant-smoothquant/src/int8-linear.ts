/**
 * The math of a W8A8 linear layer, as the checkpoint states it (compressed-tensors int8):
 *   static:  q = clamp(round(x / s_x) + z_x, −128, 127), y[n] = s_x · s_w[n] · Σ_k (q_k − z_x) · W[n,k]
 *   dynamic: per row s_t = max|x_t| / 127, q = round(x / s_t), y[n] = s_t · s_w[n] · Σ_k q_k · W[n,k]
 * `ctx.int8MatMul` lowers it in the integer form the backend runs exactly on this CPU.
 */
import {
  CheckpointError, toFloat32, type HostTensor, type Int8MatMulSpec, type LinearContextV1, type LinearMethodV1, type LinearSpec,
} from '@qllm/core';
import { COMPRESSED_TENSORS_SUFFIX as S } from './compressed-tensors.js';

export async function readFloat(ctx: LinearContextV1, name: string, length: number): Promise<Float32Array> {
  const t = await ctx.checkpoint.read(name);
  const values = toFloat32(t);
  if (values.length !== length) {
    const info = ctx.checkpoint.info(name);
    throw new CheckpointError(`${info.file}: tensor '${name}' has ${values.length} values, expected ${length}`, info.file, name);
  }
  return values;
}

/** [rows, cols] → [cols, rows], in cache-sized blocks. */
export function transposeInt8(src: Int8Array, rows: number, cols: number): Int8Array {
  const dst = new Int8Array(src.length);
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(r0 + B, rows);
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c]!;
    }
  }
  return dst;
}

/**
 * The int8 weight as the [in, out] initializer MatMulIntegerToFloat wants, transposed once at load (a
 * constant-folded Transpose node would cost onnxruntime its weight prepacking: 4× slower GEMMs).
 */
export function int8WeightT(ctx: LinearContextV1, layer: LinearSpec, name = `${layer.name}.weight`): Int8MatMulSpec['weight'] {
  const info = ctx.checkpoint.info(name);
  if (info.dtype !== 'I8') {
    throw new CheckpointError(`${info.file}: tensor '${name}' has dtype ${info.dtype}, expected I8 for a W8A8 layer`, info.file, name);
  }
  if (info.shape[0] !== layer.outFeatures || info.shape[1] !== layer.inFeatures) {
    throw new CheckpointError(
      `${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${layer.outFeatures}, ${layer.inFeatures}]`, info.file, name,
    );
  }
  return {
    name: `${name}.T`,
    shape: [layer.inFeatures, layer.outFeatures],
    data: async () => transposeInt8((await ctx.checkpoint.read(name)).data as Int8Array, layer.outFeatures, layer.inFeatures),
  };
}

function weightScale(ctx: LinearContextV1, layer: LinearSpec): string {
  const name = `${layer.name}${S.weightScale}`;
  ctx.checkpoint.info(name);
  return ctx.g.initializer(name, 'float32', [layer.outFeatures], () => readFloat(ctx, name, layer.outFeatures));
}

/** Static per-tensor activations: scale and (optional) int8 zero point from the checkpoint. */
export const staticInt8Linear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    const { checkpoint } = ctx;
    const scaleName = `${layer.name}${S.inputScale}`;
    const zpName = `${layer.name}${S.inputZeroPoint}`;
    checkpoint.info(scaleName);
    const scale = ctx.g.initializer(scaleName, 'float32', [], () => readFloat(ctx, scaleName, 1));
    const zeroPoint = async (): Promise<number> => {
      if (!checkpoint.has(zpName)) return 0;
      const t: HostTensor = await checkpoint.read(zpName);
      const zp = Number((t.data as ArrayLike<number | bigint>)[0]);
      if (t.data.length !== 1 || !Number.isInteger(zp) || zp < -128 || zp > 127) {
        const info = checkpoint.info(zpName);
        throw new CheckpointError(`${info.file}: tensor '${zpName}' must hold one int8 zero point`, info.file, zpName);
      }
      return zp;
    };
    return ctx.int8MatMul({
      x,
      activation: { scale, zeroPoint: { name: zpName, value: zeroPoint } },
      weight: int8WeightT(ctx, layer),
      weightScale: weightScale(ctx, layer),
    });
  },
};

/** Dynamic symmetric per-token activations (Golden Stick's w2 path; compressed-tensors strategy 'token'). */
export const dynamicPerTokenInt8Linear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    return ctx.int8MatMul({ x, activation: 'per-token', weight: int8WeightT(ctx, layer), weightScale: weightScale(ctx, layer) });
  },
};
