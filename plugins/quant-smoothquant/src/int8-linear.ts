/**
 * The math of a W8A8 linear layer, as the checkpoint states it (compressed-tensors int8):
 *   static:  q = clamp(round(x / s_x) + z_x, −128, 127), y[n] = s_x · s_w[n] · Σ_k (q_k − z_x) · W[n,k]
 *   dynamic: per row s_t = max|x_t| / 127, q = round(x / s_t), y[n] = s_t · s_w[n] · Σ_k q_k · W[n,k]
 * `ctx.int8MatMul` lowers it in the integer form the backend runs exactly on this CPU.
 */
import {
  CheckpointError, packedName, toFloat32, type HostTensor, type Int8MatMulSpec, type LinearContextV1, type LinearMethodV1, type LinearSpec,
  type TensorSource,
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
  return transposeInto(new Int8Array(src.length), src, rows, cols, rows, 0);
}

/** src [rows, cols] transposed into columns [offset, offset + rows) of dst [cols, stride]. */
function transposeInto(dst: Int8Array, src: Int8Array, rows: number, cols: number, stride: number, offset: number): Int8Array {
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(r0 + B, rows);
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * stride + offset + r] = src[r * cols + c]!;
    }
  }
  return dst;
}

/**
 * The int8 weight as the [in, out] initializer MatMulIntegerToFloat wants, transposed once at load (a
 * constant-folded Transpose node would cost onnxruntime its weight prepacking: 4× slower GEMMs).
 */
export function int8WeightT(ctx: LinearContextV1, layer: LinearSpec, name = `${layer.name}.weight`): Int8MatMulSpec['weight'] {
  checkInt8Weight(ctx, layer, name);
  return {
    name: `${name}.T`,
    shape: [layer.inFeatures, layer.outFeatures],
    data: async () => transposeInt8((await ctx.checkpoint.read(name)).data as Int8Array, layer.outFeatures, layer.inFeatures),
  };
}

/** The int8 weights of linears that share their input, side by side: [in, Σ out], written straight into one array. */
function packedInt8WeightT(ctx: LinearContextV1, layers: readonly LinearSpec[], name: string): Int8MatMulSpec['weight'] {
  for (const l of layers) checkInt8Weight(ctx, l, `${l.name}.weight`);
  const inF = layers[0]!.inFeatures;
  const total = layers.reduce((n, l) => n + l.outFeatures, 0);
  return {
    name: `${name}.weight.T`,
    shape: [inF, total],
    data: async () => {
      const dst = new Int8Array(inF * total);
      let offset = 0;
      for (const l of layers) {
        transposeInto(dst, (await ctx.checkpoint.read(`${l.name}.weight`)).data as Int8Array, l.outFeatures, inF, total, offset);
        offset += l.outFeatures;
      }
      return dst;
    },
  };
}

function checkInt8Weight(ctx: LinearContextV1, layer: LinearSpec, name: string): void {
  const info = ctx.checkpoint.info(name);
  if (info.dtype !== 'I8') {
    throw new CheckpointError(`${info.file}: tensor '${name}' has dtype ${info.dtype}, expected I8 for a W8A8 layer`, info.file, name);
  }
  if (info.shape[0] !== layer.outFeatures || info.shape[1] !== layer.inFeatures) {
    throw new CheckpointError(
      `${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${layer.outFeatures}, ${layer.inFeatures}]`, info.file, name,
    );
  }
}

function weightScale(ctx: LinearContextV1, layer: LinearSpec): string {
  const name = `${layer.name}${S.weightScale}`;
  ctx.checkpoint.info(name);
  return ctx.g.initializer(name, 'float32', [layer.outFeatures], () => readFloat(ctx, name, layer.outFeatures));
}

/** The logical int8 zero point of a static linear's activations (0 when the checkpoint has none). */
async function readZeroPoint(checkpoint: TensorSource, zpName: string): Promise<number> {
  if (!checkpoint.has(zpName)) return 0;
  const t: HostTensor = await checkpoint.read(zpName);
  const zp = Number((t.data as ArrayLike<number | bigint>)[0]);
  if (t.data.length !== 1 || !Number.isInteger(zp) || zp < -128 || zp > 127) {
    const info = checkpoint.info(zpName);
    throw new CheckpointError(`${info.file}: tensor '${zpName}' must hold one int8 zero point`, info.file, zpName);
  }
  return zp;
}

function staticActivation(ctx: LinearContextV1, layer: LinearSpec): Int8MatMulSpec['activation'] {
  const scaleName = `${layer.name}${S.inputScale}`;
  const zpName = `${layer.name}${S.inputZeroPoint}`;
  ctx.checkpoint.info(scaleName);
  const scale = ctx.g.initializer(scaleName, 'float32', [], () => readFloat(ctx, scaleName, 1));
  return { scale, zeroPoint: { name: zpName, value: () => readZeroPoint(ctx.checkpoint, zpName) } };
}

/** One linear's activation scale and zero point as read ahead (undefined where they were not). */
function readAheadActivation(ctx: LinearContextV1, layer: LinearSpec): string | undefined {
  const scale = ctx.smallTensor(`${layer.name}${S.inputScale}`);
  const zpName = `${layer.name}${S.inputZeroPoint}`;
  const zp = ctx.checkpoint.has(zpName) ? ctx.smallTensor(zpName) : { data: [0] };
  if (!scale || !zp || scale.data.length !== 1 || zp.data.length !== 1) return undefined;
  return `${toFloat32(scale as HostTensor)[0]}/${Number(zp.data[0])}`;
}

/** Static per-tensor activations: scale and (optional) int8 zero point from the checkpoint. */
export const staticInt8Linear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    return ctx.int8MatMul({ x, activation: staticActivation(ctx, layer), weight: int8WeightT(ctx, layer), weightScale: weightScale(ctx, layer) });
  },
  /**
   * Linears whose activations quantize alike (the same scale and zero point: q/k/v and gate/up after SmoothQuant
   * folded one smoothing into their shared norm) as one GEMM: one quantization of x, the int8 weights side by side,
   * a Split. Every output column is the same integer sum times the same scales as alone, so the result is identical.
   */
  applyPacked(ctx, layers, x) {
    const activations = layers.map((l) => readAheadActivation(ctx, l));
    if (activations.some((a) => a === undefined || a !== activations[0])) return null;
    const name = packedName(layers);
    const scales = layers.map((l) => `${l.name}${S.weightScale}`);
    for (const n of scales) ctx.checkpoint.info(n);
    const total = layers.reduce((n, l) => n + l.outFeatures, 0);
    const weightScales = ctx.g.initializer(`${name}${S.weightScale}`, 'float32', [total], async () => {
      const all = new Float32Array(total);
      let offset = 0;
      for (const [i, l] of layers.entries()) {
        all.set(await readFloat(ctx, scales[i]!, l.outFeatures), offset);
        offset += l.outFeatures;
      }
      return all;
    });
    const y = ctx.int8MatMul({ x, activation: staticActivation(ctx, layers[0]!), weight: packedInt8WeightT(ctx, layers, name), weightScale: weightScales });
    return ctx.g.node('Split', [y, ctx.g.constant('int64', [layers.length], layers.map((l) => l.outFeatures))], { axis: -1 }, { outputs: layers.length });
  },
};

/** Dynamic symmetric per-token activations (Golden Stick's w2 path; compressed-tensors strategy 'token'). */
export const dynamicPerTokenInt8Linear: LinearMethodV1 = {
  apply(ctx, layer, x) {
    return ctx.int8MatMul({ x, activation: 'per-token', weight: int8WeightT(ctx, layer), weightScale: weightScale(ctx, layer) });
  },
};
