/**
 * qllm: the batteries-included entry. Re-exports @qllm/core and registers the first-party plugins through the
 * same public registries a third-party plugin uses (lazily: a plugin's code loads when its name is first used).
 */
import { backends, modelArchitectures, quantizationMethods } from '@qllm/core';

export * from '@qllm/core';

/** Register qllm's own plugins (idempotent). Importing 'qllm' calls it. */
export function registerBuiltinPlugins(): void {
  if (!modelArchitectures.has('Qwen3ForCausalLM')) {
    modelArchitectures.register('Qwen3ForCausalLM', { load: async () => (await import('@qllm/model-qwen3')).qwen3 });
  }
  if (!quantizationMethods.has('SmoothQuant')) {
    quantizationMethods.register('SmoothQuant', { load: async () => (await import('@qllm/quant-smoothquant')).smoothQuant });
  }
  if (!backends.has('cpu')) {
    backends.register('cpu', { load: async () => (await import('@qllm/backend-cpu')).cpu });
  }
  if (!backends.has('ascend')) {
    backends.register('ascend', { load: async () => (await import('@qllm/backend-ascend')).ascend });
  }
}

registerBuiltinPlugins();
