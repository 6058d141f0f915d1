/**
 * The online half of one quantized linear: y = x · (q · s)ᵀ, emitted as two ONNX ops,
 *   W = DequantizeLinear(q int8 [out, in], s float32 [out], axis 0)   → float32 [out, in]
 *   y = Gemm(x, W, transB 1)
 * Activations stay float. The checkpoint holds int8, but onnxruntime dequantizes the whole matrix on every run:
 * this is a readable example of the plugin API, not a fast kernel.
 */
import { CheckpointError, toFloat32, type LinearContextV1, type LinearMethodV1, type LinearSpec, type TensorInfo } from '@qllm/core';

function mismatch(info: TensorInfo, what: string): CheckpointError {
  return new CheckpointError(`${info.file}: tensor '${info.name}' ${what}`, info.file, info.name);
}

function checkTensor(ctx: LinearContextV1, name: string, dtypes: readonly string[], shape: readonly number[]): TensorInfo {
  const info = ctx.checkpoint.info(name); // a CheckpointError naming the tensor and checkpoint when absent
  if (!dtypes.includes(info.dtype)) {
    throw mismatch(info, `has dtype ${info.dtype}, expected ${dtypes.join(' or ')} for a weight-only int8 layer`);
  }
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw mismatch(info, `has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}] for a weight-only int8 layer`);
  }
  return info;
}

export const int8WeightLinear: LinearMethodV1 = {
  apply(ctx: LinearContextV1, layer: LinearSpec, x: string): string {
    const { inFeatures: inF, outFeatures: out } = layer;
    const weightName = `${layer.name}.weight`;
    const scaleName = `${layer.name}.weight_scale`;
    // Checked now, while the graph is built; read only when the model is built (one tensor at a time).
    checkTensor(ctx, weightName, ['I8'], [out, inF]);
    const scaleInfo = checkTensor(ctx, scaleName, ['F32', 'BF16', 'F16'], [out]);
    const q = ctx.g.initializer(weightName, 'int8', [out, inF], async () => (await ctx.checkpoint.read(weightName)).data as Int8Array);
    const s = ctx.g.initializer(scaleName, 'float32', [out], async () => {
      const values = toFloat32(await ctx.checkpoint.read(scaleName));
      const bad = values.findIndex((v) => !(v > 0 && v < Infinity));
      if (bad >= 0) throw mismatch(scaleInfo, `holds ${values[bad]} at row ${bad}; scales must be positive and finite`);
      return values;
    });
    const w = ctx.g.op('DequantizeLinear', [q, s], { axis: 0 }, { name: `${layer.name}.dequantize` });
    return ctx.g.op('Gemm', [x, w], { transB: 1 }, { name: layer.name });
  },
};
