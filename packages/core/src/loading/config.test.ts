import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { normalizeHfConfig, readJsonFile } from './config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readJsonFile', () => {
  it('reads a JSON object', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, '{"hidden_size": 64}');
    expect(await readJsonFile(file, 'model config')).toEqual({ hidden_size: 64 });
  });

  it('missing file → ConfigError "PATH: file not found"', async () => {
    const file = path.join(dir, 'config.json');
    const read = readJsonFile(file, 'model config');
    await expect(read).rejects.toThrow(ConfigError);
    await expect(read).rejects.toThrow(`${file}: file not found`);
  });

  it('bad JSON → ConfigError naming the path and the parse error', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, '{"hidden_size": 64,}');
    const read = readJsonFile(file, 'model config');
    await expect(read).rejects.toThrow(ConfigError);
    await expect(read).rejects.toThrow(new RegExp(`^${file}: the model config is not valid JSON \\(.+\\)$`));
  });

  it('bytes that are not UTF-8, or a byte order mark, are errors (as in transformers), not silently replaced', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, Buffer.concat([Buffer.from('{"model_type": "qwen'), Buffer.from([0xff]), Buffer.from('3"}')]));
    const read = readJsonFile(file, 'model config');
    await expect(read).rejects.toThrow(ConfigError);
    await expect(read).rejects.toThrow(`${file}: the model config is not valid UTF-8`);
    await writeFile(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"hidden_size": 64}')]));
    await expect(readJsonFile(file, 'model config')).rejects.toThrow(`${file}: the model config starts with a byte order mark`);
    await writeFile(file, '{"name": "Ω 😀"}');
    expect(await readJsonFile(file, 'model config')).toEqual({ name: 'Ω 😀' });
  });

  it('JSON that is not an object', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, '[1, 2]');
    await expect(readJsonFile(file, 'model config')).rejects.toThrow(`${file}: the model config must be a JSON object`);
  });
});

describe('normalizeHfConfig', () => {
  it('fills torch_dtype from dtype (transformers ≥4.56) and dtype from torch_dtype (older files)', () => {
    expect(normalizeHfConfig({ dtype: 'bfloat16' }, 'config.json')).toEqual({ dtype: 'bfloat16', torch_dtype: 'bfloat16' });
    expect(normalizeHfConfig({ torch_dtype: 'float32' }, 'config.json')).toEqual({ dtype: 'float32', torch_dtype: 'float32' });
    expect(normalizeHfConfig({ dtype: 'a', torch_dtype: 'b' }, 'config.json')).toEqual({ dtype: 'a', torch_dtype: 'b' });
  });

  it('fills rope_theta from rope_parameters (transformers 5) and leaves rope_scaling unset for the default type', () => {
    const raw = { rope_parameters: { rope_theta: 1000000, rope_type: 'default' }, pad_token_id: null, layer_types: ['full_attention'] };
    const config = normalizeHfConfig(raw, 'config.json');
    expect(config).toEqual({ ...raw, rope_theta: 1000000 });
    expect(raw).not.toHaveProperty('rope_theta');
  });

  it('fills rope_scaling from rope_parameters for a non-default rope_type', () => {
    const rope = { rope_theta: 5000000, rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 };
    const config = normalizeHfConfig({ rope_parameters: rope }, 'config.json');
    expect(config.rope_theta).toBe(5000000);
    expect(config.rope_scaling).toEqual({ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 });
  });

  it('keeps an explicit rope_theta and rope_scaling', () => {
    const raw = { rope_theta: 10000, rope_scaling: { rope_type: 'linear', factor: 2 }, rope_parameters: { rope_theta: 1, rope_type: 'yarn' } };
    expect(normalizeHfConfig(raw, 'config.json')).toEqual(raw);
  });

  it('rejects a rope_parameters that is not an object, naming the file', () => {
    expect(() => normalizeHfConfig({ rope_parameters: 5 }, '/m/config.json')).toThrow("/m/config.json: 'rope_parameters' must be an object");
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(() => normalizeHfConfig({ rope_parameters: deep }, '/m/config.json')).toThrow(ConfigError);
  });
});
