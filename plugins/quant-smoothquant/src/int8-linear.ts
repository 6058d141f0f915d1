/**
 * Lowering of a W8A8 linear layer to onnxruntime int8 ops (u8 activations × s8 weights, MLAS's VNNI path):
 *   static:  q = QuantizeLinear(x, s_x, z_x + 128) as uint8 → MatMulIntegerToFloat(q, Wᵀ, s_x, s_w, z_x + 128)
 *            = s_x · s_w[n] · Σ_k (q_k − z) · W[n,k]   (the zero-point correction is the kernel's own)
 *   dynamic: per row s_t = max|x_t| / 127, q = round(x / s_t) + 128 as uint8 →
 *            MatMulIntegerToFloat(q, Wᵀ, 1, s_w, 128) · s_t
 * int8 activations shifted by +128 are exactly uint8 ones with the zero point shifted by 128.
 */
import { CheckpointError, toFloat32, type HostTensor, type LinearContextV1, type LinearMethodV1, type LinearSpec } from '@qllm/core';

async function readFloat(ctx: LinearContextV1, name: string, length: number): Promise<Float32Array> {
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
function int8WeightT(ctx: LinearContextV1, layer: LinearSpec): string {
  const name = `${layer.name}.weight`;
  const info = ctx.checkpoint.info(name);
  if (info.dtype !== 'I8') {
    throw new CheckpointError(`${info.file}: tensor '${name}' has dtype ${info.dtype}, expected I8 for a W8A8 layer`, info.file, name);
  }
  if (info.shape[0] !== layer.outFeatures || info.shape[1] !== layer.inFeatures) {
    throw new CheckpointError(
      `${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${layer.outFeatures}, ${layer.inFeatures}]`, info.file, name,
    );
  }
  return ctx.g.initializer(`${name}.T`, 'int8', [layer.inFeatures, layer.outFeatures],
    async () => transposeInt8((await ctx.checkpoint.read(name)).data as Int8Array, layer.outFeatures, layer.inFeatures));
}

function weightScale(ctx: LinearContextV1, layer: LinearSpec): string {
  const name = `${layer.name}.weight_scale`;
  ctx.checkpoint.info(name);
  return ctx.g.initializer(name, 'float32', [layer.outFeatures], () => readFloat(ctx, name, layer.outFeatures));
}

/** Static per-tensor activations: scale and (optional) int8 zero point from the checkpoint. */
export const staticInt8Linear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    const { g, checkpoint } = ctx;
    const scaleName = `${layer.name}.input_scale`;
    const zpName = `${layer.name}.input_zero_point`;
    checkpoint.info(scaleName);
    const aScale = g.initializer(scaleName, 'float32', [], () => readFloat(ctx, scaleName, 1));
    const aZero = g.initializer(`${zpName}.u8`, 'uint8', [], async () => {
      if (!checkpoint.has(zpName)) return Uint8Array.of(128);
      const t: HostTensor = await checkpoint.read(zpName);
      const zp = Number((t.data as ArrayLike<number | bigint>)[0]);
      if (t.data.length !== 1 || !(zp >= -128 && zp <= 127)) {
        const info = checkpoint.info(zpName);
        throw new CheckpointError(`${info.file}: tensor '${zpName}' must hold one int8 zero point`, info.file, zpName);
      }
      return Uint8Array.of(zp + 128);
    });
    const q = g.op('QuantizeLinear', [x, aScale, aZero]);
    return g.op('MatMulIntegerToFloat', [q, int8WeightT(ctx, layer), aScale, weightScale(ctx, layer), aZero], {}, { domain: 'com.microsoft' });
  },
};

/** Dynamic symmetric per-token activations (Golden Stick's w2 path; compressed-tensors strategy 'token'). */
export const dynamicPerTokenInt8Linear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    const { g } = ctx;
    const rowMax = g.op('ReduceMax', [g.op('Abs', [x]), g.ints([-1])], { keepdims: 1 }); // [S, 1]
    // A zero row gets a tiny scale, so it quantizes to 0 rather than NaN.
    const scale = g.op('Max', [g.op('Div', [rowMax, g.scalar(127)]), g.scalar(1e-30)]);
    const q = g.op('Cast', [g.op('Add', [g.op('Round', [g.op('Div', [x, scale])]), g.scalar(128)])], { to: 2 }); // uint8
    const y = g.op('MatMulIntegerToFloat', [q, int8WeightT(ctx, layer), g.scalar(1), weightScale(ctx, layer), g.constant('uint8', [], [128])], {}, { domain: 'com.microsoft' });
    return g.op('Mul', [y, scale]);
  },
};
