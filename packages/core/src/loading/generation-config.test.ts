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

  // These used to pass the type check here and fail later as 'SamplingParams.temperature ...' (or be read as is).
  it.each([
    [{ temperature: -1 }, "'temperature' must be a number in [0, 2], got -1"],
    [{ temperature: 5 }, "'temperature' must be a number in [0, 2], got 5"],
    [{ top_k: 'x' }, `'top_k' must be 0 or -1 (off) or an integer in [1, 2147483647], got "x"`],
    [{ top_k: 1e12 }, "'top_k' must be 0 or -1 (off) or an integer in [1, 2147483647], got 1000000000000"],
    [{ top_k: 2.5 }, "'top_k' must be 0 or -1 (off) or an integer in [1, 2147483647], got 2.5"],
    [{ top_p: 0 }, "'top_p' must be a number in (0, 1], got 0"],
    [{ top_p: 1.5 }, "'top_p' must be a number in (0, 1], got 1.5"],
    [{ min_p: 2 }, "'min_p' must be a number in [0, 1], got 2"],
    [{ repetition_penalty: 0 }, "'repetition_penalty' must be a finite number > 0, got 0"],
    [{ max_new_tokens: 0 }, "'max_new_tokens' must be an integer in [1, 2147483647], got 0"],
    [{ max_new_tokens: '16' }, `'max_new_tokens' must be an integer in [1, 2147483647], got "16"`],
  ])('rejects out-of-range sampling field %j, naming the file and the snake_case key', async (gen, message) => {
    const file = path.join(dir, 'generation_config.json');
    await writeGen(gen);
    const read = readGenerationConfig(dir, modelConfig);
    await expect(read).rejects.toThrow(ConfigError);
    await expect(read).rejects.toThrow(`${file}: ${message}`);
  });

  it('accepts what SamplingParams accepts: top_k -1 or 0 (off), temperature 0 (greedy) and 2', async () => {
    await writeGen({ top_k: -1, temperature: 0 });
    expect(await readGenerationConfig(dir, modelConfig)).toMatchObject({ topK: -1, temperature: 0 });
    await writeGen({ top_k: 0, temperature: 2, top_p: 1, min_p: 1 });
    expect(await readGenerationConfig(dir, modelConfig)).toMatchObject({ topK: 0, temperature: 2, topP: 1, minP: 1 });
  });

  it('names generation_config.json when it is not valid JSON', async () => {
    const file = path.join(dir, 'generation_config.json');
    await writeFile(file, '{');
    await expect(readGenerationConfig(dir, modelConfig)).rejects.toThrow(`${file}: the generation config is not valid JSON`);
  });
});
