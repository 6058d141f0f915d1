/** `qllm generate` as other tools call it: a subprocess whose stdout is one JSON array (vLLM's shape, snake_case). */
import { execFile, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRefWeights, makeTinyQwen3, Qwen3Reference, refConfigFromHf } from '@qllm/testing';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('./bin.ts', import.meta.url));
const nodeArgs = ['--conditions=source', '--import', 'tsx', bin];
const qllm = (args: string[]) => run(process.execPath, [...nodeArgs, ...args], { cwd: path.dirname(bin), maxBuffer: 64 << 20 });

type JsonRequest = { prompt: string | null; prompt_token_ids: number[]; outputs: Array<{ token_ids: number[]; text: string }> };

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

describe('long command lines (onnxruntime reads /proc/self/cmdline recursively: ~30 KB of argv was a SIGSEGV)', () => {
  // 40 KB on one line (a newline in the argument was seen to keep onnxruntime from crashing) in ~1000 tokens (a
  // quick prefill, well within the model's length), multi-byte at both ends to check it reaches the child intact.
  const longText = `naïve café, 世界 🙂: ${`${'='.repeat(79)} `.repeat(512)}— fin 🙂`;

  it('a 40 KB --prompt succeeds, and generates what the same text from --prompt-file does', async () => {
    expect(Buffer.byteLength(longText)).toBeGreaterThanOrEqual(40 << 10);
    const common = ['--max-tokens', '2', '--temperature', '0', '--json'];
    const { stdout } = await qllm(['generate', '--model', modelDir, '--prompt', longText, ...common]);
    const [viaArgv] = JSON.parse(stdout) as JsonRequest[];
    expect(viaArgv!.prompt).toBe(longText);
    expect(viaArgv!.outputs[0]!.token_ids).toHaveLength(2);

    const file = path.join(root, 'long-prompt.txt');
    await fs.writeFile(file, longText);
    const [viaFile] = JSON.parse((await qllm(['generate', '--model', modelDir, '--prompt-file', file, ...common])).stdout) as JsonRequest[];
    expect(viaFile!.prompt).toBe(longText);
    expect(viaFile!.prompt_token_ids).toEqual(viaArgv!.prompt_token_ids);
    expect(viaFile!.outputs[0]!.token_ids).toEqual(viaArgv!.outputs[0]!.token_ids);
  });

  it('8192 --prompt-token-ids succeed', async () => {
    const ids = Array.from({ length: 8192 }, (_, i) => 100 + ((i * 7919) % 150_000));
    const { stdout } = await qllm(['generate', '--model', modelDir, '--prompt-token-ids', ids.join(','), '--max-tokens', '1', '--temperature', '0', '--json']);
    const [request] = JSON.parse(stdout) as JsonRequest[];
    expect(request!.prompt).toBeNull();
    expect(request!.prompt_token_ids).toEqual(ids);
    expect(request!.outputs[0]!.token_ids).toHaveLength(1);
  });

  it("passes on the child's exit code and its one-line error", async () => {
    await expect(qllm(['generate', '--model', modelDir, '--prompt', longText, '--max-tokens', '1e3'])).rejects.toMatchObject({
      code: 1, stdout: '', stderr: "qllm: --max-tokens expects an integer, got '1e3'\n",
    });
  });

  it('passes SIGTERM on to the child, and ends by the same signal once the child is gone', async () => {
    const dashes = '-'.repeat(40 << 10); // few tokens, so the model loads quickly
    const child = spawn(process.execPath, [...nodeArgs, 'generate', '--model', modelDir, '--prompt', dashes, '--max-tokens', '30000', '--ignore-eos'], {
      cwd: path.dirname(bin),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    // 'close' waits for every holder of the stdout/stderr pipes, the re-launched child included.
    const closed = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (code, signal) => resolve([code, signal])));
    const loaded = new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/loaded/.test(stderr)) resolve();
      });
      void closed.then(() => reject(new Error(`qllm ended before loading the model: ${stderr}`)));
    });
    await loaded;
    child.kill('SIGTERM');
    expect(await closed).toEqual([null, 'SIGTERM']);
  });
});

describe('qllm generate: prompt files and their order', () => {
  it('takes --prompt-file and --prompt-token-ids-file; text prompts first, then token-id prompts, each in command-line order', async () => {
    const textFile = path.join(root, 'prompt.txt');
    const idsFile = path.join(root, 'ids.txt');
    await fs.writeFile(textFile, 'Today is\n');
    await fs.writeFile(idsFile, '785 6722\n 13876,\t8251\n');
    const { stdout } = await qllm([
      'generate', '--model', modelDir, '--prompt-token-ids-file', idsFile, '--prompt', 'I am', '--prompt-token-ids', '40,1079,264',
      '--prompt-file', textFile, '--max-tokens', '3', '--temperature', '0', '--json',
    ]);
    const requests = JSON.parse(stdout) as JsonRequest[];
    expect(requests.map((r) => r.prompt)).toEqual(['I am', 'Today is\n', null, null]);
    expect(requests[2]!.prompt_token_ids).toEqual([785, 6722, 13876, 8251]);
    expect(requests[3]!.prompt_token_ids).toEqual([40, 1079, 264]);
    for (const r of requests) expect(r.outputs[0]!.token_ids).toEqual(ref.greedy(r.prompt_token_ids, 3).tokenIds);
  });
});

describe('qllm generate: limits checked before any work', () => {
  it('--logprobs above --max-logprobs (default 20) fails at once, naming both numbers', async () => {
    await expect(qllm(['generate', '--model', modelDir, '--prompt', 'x', '--logprobs', '1000000'])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/^qllm: --logprobs 1000000 is more than --max-logprobs 20 .*\n$/),
    });
  });

  it('--threads outside [1, 256] fails naming --threads', async () => {
    for (const threads of ['500', '-3']) {
      await expect(qllm(['generate', '--model', modelDir, '--prompt', 'x', '--threads', threads])).rejects.toMatchObject({
        code: 1, stderr: `qllm: --threads expects an integer in [1, 256], got '${threads}'\n`,
      });
    }
  });

  it("a bad generation_config.json value is reported with the file's path and snake_case key", async () => {
    const dir = path.join(root, 'bad-generation-config');
    await fs.cp(modelDir, dir, { recursive: true });
    const file = path.join(dir, 'generation_config.json');
    const gen = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    for (const [key, value, problem] of [
      ['temperature', -1, 'must be a number in [0, 2], got -1'],
      ['top_k', 'x', 'must be 0 or -1 (off) or an integer in [1, 2147483647], got "x"'],
    ] as const) {
      await fs.writeFile(file, JSON.stringify({ ...gen, [key]: value }));
      const failure = await qllm(['generate', '--model', dir, '--prompt', 'x']).then(() => undefined, (e: { code: number; stderr: string }) => e);
      expect(failure?.code).toBe(1);
      // Progress lines come first; the error is the last line.
      expect(failure!.stderr.trimEnd().split('\n').at(-1)).toBe(`qllm: ${file}: '${key}' ${problem}`);
    }
  });
});
