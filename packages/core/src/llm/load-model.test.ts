import { describe, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import type { ModelFolder } from '../loading/index.js';
import type { ModelArchitectureV1, ModelConfigV1 } from '../model/v1/model-architecture-v1.js';
import { modelArchitectures } from '../registries.js';
import { resolveArchitecture } from './load-model.js';

/** Only what resolveArchitecture reads. */
const folder = (architectures: unknown): ModelFolder =>
  ({ dir: '/models/m', config: { architectures }, configFile: '/models/m/config.json' }) as unknown as ModelFolder;

describe('resolveArchitecture', () => {
  it('an unknown architecture names config.json and lists the registered ones', async () => {
    modelArchitectures.register('TestOnlyForCausalLM', { load: () => ({}) as ModelArchitectureV1<ModelConfigV1> }, { override: true });
    const resolve = resolveArchitecture(folder(['LlamaForCausalLM']));
    await expect(resolve).rejects.toThrow(RegistryError);
    await expect(resolve).rejects.toThrow(
      /^\/models\/m\/config\.json: 'architectures' names an unknown model architecture 'LlamaForCausalLM'; registered: (.*, )?TestOnlyForCausalLM/,
    );
  });
});
