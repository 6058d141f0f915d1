/** `qllm generate` as other tools call it: a subprocess whose stdout is one JSON array (vLLM's shape, snake_case). */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRefWeights, makeTinyQwen3, Qwen3Reference, refConfigFromHf } from '@qllm/testing';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('./bin.ts', import.meta.url));
const qllm = (args: string[]) =>
  run(process.execPath, ['--conditions=source', '--import', 'tsx', bin, ...args], { cwd: path.dirname(bin), maxBuffer: 64 << 20 });

let root: string;
let modelDir: string;
let ref: Qwen3Reference;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-cli-'));
  modelDir = path.join(root, 'tiny');
  const { config } = await makeTinyQwen3(modelDir, { seed: 5 });
  ref = new Qwen3Reference(refConfigFromHf(config), await loadRefWeights(modelDir));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('qllm generate --json', () => {
  it('prints exactly one JSON array with one element per prompt, logs on stderr', async () => {
    const { stdout, stderr } = await qllm([
      'generate', '--model', modelDir, '--prompt', 'I am', '--prompt-token-ids', '40,1079,264',
      '--max-tokens', '5', '--temperature', '0', '--logprobs', '3', '--json',
    ]);
    expect(stderr).toMatch(/loaded/);
    const parsed = JSON.parse(stdout) as Array<Record<string, unknown>>;
    expect(parsed).toHaveLength(2);
    const [text, ids] = parsed as Array<{ prompt: string | null; prompt_token_ids: number[]; outputs: Array<Record<string, unknown>> }>;
    expect(text!.prompt).toBe('I am');
    expect(ids!.prompt).toBeNull();
    expect(ids!.prompt_token_ids).toEqual([40, 1079, 264]);
    for (const request of [text!, ids!]) {
      const out = request.outputs[0] as { index: number; text: string; token_ids: number[]; cumulative_logprob: number; logprobs: Array<Record<string, number>>; finish_reason: string };
      expect(Object.keys(out).sort()).toEqual(['cumulative_logprob', 'finish_reason', 'index', 'logprobs', 'stop_reason', 'text', 'token_ids']);
      expect(out.index).toBe(0);
      expect(out.finish_reason).toBe('length');
      const expected = ref.greedy(request.prompt_token_ids, 5);
      expect(out.token_ids).toEqual(expected.tokenIds);
      expect(out.logprobs).toHaveLength(5);
      let sum = 0;
      out.logprobs.forEach((entry, i) => {
        const chosen = expected.tokenIds[i]!;
        expect(Object.keys(entry).length).toBe(3);
        expect(entry[String(chosen)]).toBeCloseTo(expected.logprobs[i]![chosen]!, 3);
        for (const [id, lp] of Object.entries(entry)) expect(lp).toBeCloseTo(expected.logprobs[i]![Number(id)]!, 3);
        sum += entry[String(chosen)]!;
      });
      expect(out.cumulative_logprob).toBeCloseTo(sum, 6);
    }
  });

  it('fails with one clear line and a non-zero exit for bad input', async () => {
    await expect(qllm(['generate', '--model', path.join(root, 'nope'), '--prompt', 'x'])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/model folder not found/),
    });
    await expect(qllm(['generate', '--model', modelDir, '--prompt-token-ids', '1,x'])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/--prompt-token-ids expects comma-separated non-negative integers/),
    });
    await expect(qllm(['generate', '--model', modelDir])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/at least one --prompt/),
    });
  });
});
