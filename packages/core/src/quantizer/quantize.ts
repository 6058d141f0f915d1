import { ConfigError } from '../errors.js';
import { quantizationMethods } from '../registries.js';
import type { OfflineQuantizeOptionsV1, OfflineQuantizeResultV1 } from './v1/quantization-method-v1.js';

/** Quantize a checkpoint offline with a registered method (default 'SmoothQuant'). */
export async function quantize(options: OfflineQuantizeOptionsV1 & { method?: string }): Promise<OfflineQuantizeResultV1> {
  const name = options.method ?? 'SmoothQuant';
  const method = await quantizationMethods.get(name);
  if (!method.quantize) throw new ConfigError(`quantization method '${name}' has no offline quantize(); it only serves checkpoints`);
  return method.quantize(options);
}
