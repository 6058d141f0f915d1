import { Checkpoint, toFloat32 } from '@qllm/core';
import type { RefWeights } from './reference.js';

/**
 * Reads every tensor of a Hugging Face model folder (`model.safetensors`, or shards listed in
 * `model.safetensors.index.json`) into float64 and returns them as RefWeights. Meant for tiny test models:
 * everything is held in memory at 8 bytes per parameter.
 */
export async function loadRefWeights(dir: string): Promise<RefWeights> {
  const ckpt = await Checkpoint.open(dir);
  const tensors = new Map<string, Float64Array>();
  try {
    for (const name of ckpt.names()) {
      const t = await ckpt.read(name);
      tensors.set(name, t.dtype === 'F64' ? (t.data as Float64Array) : Float64Array.from(toFloat32(t)));
    }
  } finally {
    await ckpt.close();
  }
  return (name: string) => {
    const w = tensors.get(name);
    if (!w) throw new RangeError(`loadRefWeights: tensor "${name}" is not in ${dir}`);
    return w;
  };
}
