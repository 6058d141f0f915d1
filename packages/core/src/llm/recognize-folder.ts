import type { ModelFolder } from '../loading/index.js';
import type { ModelArchitectureV1, ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import type { QuantizationMethodV1, RecognizedCheckpointV1 } from '../quantizer/v1/quantization-method-v1.js';
import { quantizationMethods } from '../registries.js';

/**
 * A quantized checkpoint that config.json does not describe (no quantization_config), recognised by a method's
 * `recognizeFolder` (by tensor names or a description file): the requested method only, or else every registered one.
 */
export async function recognizeFolder(
  explicit: string | undefined,
  folder: ModelFolder,
  model: { architecture: ModelArchitectureV1<ModelConfigV1>; config: ModelConfigV1 },
): Promise<(RecognizedCheckpointV1 & { method: QuantizationMethodV1 }) | undefined> {
  if (folder.config.quantization_config) return undefined;
  const candidates = explicit ? [await quantizationMethods.get(explicit)] : (await quantizationMethods.all()).map(([, m]) => m);
  for (const method of candidates) {
    const found = await method.recognizeFolder?.({ dir: folder.dir, config: folder.config, checkpoint: folder.checkpoint }, model);
    if (found) return { ...found, method };
  }
  return undefined;
}
