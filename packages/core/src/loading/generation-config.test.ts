import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { readGenerationConfig } from './generation-config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qllm-genconfig-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const modelConfig = { bos_token_id: 151643, eos_token_id: 151645 };
const writeGen = (gen: unknown) => writeFile(path.join(dir, 'generation_config.json'), JSON.stringify(gen));

describe('readGenerationConfig', () => {
  it('reads the Qwen3 generation_config.json (eos list kept in order)', async () => {
    await writeGen({
      bos_token_id: 151643, do_sample: true, eos_token_id: [151645, 151643], pad_token_id: 151643,
      temperature: 0.6, top_k: 20, top_p: 0.95, transformers_version: '4.51.0',
    });
    expect(await readGenerationConfig(dir, modelConfig)).toEqual({
      eosTokenIds: [151645, 151643], bosTokenId: 151643, padTokenId: 151643,
      temperature: 0.6, topP: 0.95, topK: 20, doSample: true,
    });
  });

  it('accepts a single eos id, deduplicates lists, and reads the remaining fields', async () => {
    await writeGen({ eos_token_id: 7, min_p: 0, repetition_penalty: 1.1, max_new_tokens: 256, do_sample: false });
    expect(await readGenerationConfig(dir, modelConfig)).toEqual({
      eosTokenIds: [7], bosTokenId: 151643, minP: 0, repetitionPenalty: 1.1, maxNewTokens: 256, doSample: false,
    });
    await writeGen({ eos_token_id: [3, 1, 3, 2, 1] });
    expect((await readGenerationConfig(dir, modelConfig)).eosTokenIds).toEqual([3, 1, 2]);
  });

  it('falls back to config.json ids without generation_config.json', async () => {
    expect(await readGenerationConfig(dir, { ...modelConfig, pad_token_id: null })).toEqual({
      eosTokenIds: [151645], bosTokenId: 151643,
    });
    expect(await readGenerationConfig(dir, {})).toEqual({ eosTokenIds: [] });
  });

  it('rejects wrongly typed fields, naming the file and the field', async () => {
    const file = path.join(dir, 'generation_config.json');
    await writeGen({ eos_token_id: [151645, 'x'] });
    const read = readGenerationConfig(dir, modelConfig);
    await expect(read).rejects.toThrow(ConfigError);
    await expect(read).rejects.toThrow(`${file}: 'eos_token_id' must be a non-negative integer, got "x"`);
    await writeGen({ temperature: '0.7' });
    await expect(readGenerationConfig(dir, modelConfig)).rejects.toThrow(`${file}: 'temperature' must be a number`);
  });

  it('names generation_config.json when it is not valid JSON', async () => {
    const file = path.join(dir, 'generation_config.json');
    await writeFile(file, '{');
    await expect(readGenerationConfig(dir, modelConfig)).rejects.toThrow(`${file}: the generation config is not valid JSON`);
  });
});
