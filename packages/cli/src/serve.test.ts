/**
 * `qllm serve` as a process: it listens on 127.0.0.1 (port 0: a free one), serves with the API key from
 * QLLM_API_KEY, and on SIGTERM lets the running stream finish and exits 0. (The `openai` client's own tests are
 * @qllm/server's; here plain fetch.)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_QUEUE } from '@qllm/server';
import { makeTinyQwen3 } from '@qllm/testing';
import { SERVE_DEFAULT_MAX_QUEUE } from './serve.js';

const bin = fileURLToPath(new URL('./bin.ts', import.meta.url));
const nodeArgs = ['--conditions=source', '--import', 'tsx', bin];
const run = promisify(execFile);

let root: string;
let modelDir: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-serve-'));
  modelDir = path.join(root, 'tiny');
  await makeTinyQwen3(modelDir, { seed: 21 });
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** Start `qllm serve` and resolve with its URL once it says it is listening. */
function serve(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string; stderr: () => string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [...nodeArgs, 'serve', '--model', modelDir, '--host', '127.0.0.1', '--port', '0', '--threads', '2', ...args], {
    cwd: path.dirname(bin),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) resolve({ child, url: m[1]!, stderr: () => stderr, exit });
    });
    void exit.then((code) => reject(new Error(`qllm serve exited (${code}) before listening:\n${stderr}`)));
  });
}

describe('qllm serve', () => {
  it('serves with an API key, and shuts down gracefully on SIGTERM (exit 0)', async () => {
    const { child, url, stderr, exit } = await serve(['--served-model-name', 'tiny', '--max-num-seqs', '2', '--max-model-len', '512'], { QLLM_API_KEY: 'sk-cli' });
    try {
      expect((await fetch(`${url}/health`)).status).toBe(200);
      expect((await fetch(`${url}/v1/models`)).status).toBe(401);
      const auth = { authorization: 'Bearer sk-cli', 'content-type': 'application/json' };
      const models = (await (await fetch(`${url}/v1/models`, { headers: auth })).json()) as { data: Array<{ id: string }> };
      expect(models.data[0]!.id).toBe('tiny');
      const post = (body: object) => fetch(`${url}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'tiny', prompt: 'I am', temperature: 0, ...body }) });
      const done = (await (await post({ max_tokens: 3 })).json()) as { usage: { completion_tokens: number } };
      expect(done.usage.completion_tokens).toBe(3);

      const res = await post({ max_tokens: 60, ignore_eos: true, stream: true });
      const reader = res.body!.getReader();
      let text = Buffer.from((await reader.read()).value!).toString('utf8');
      child.kill('SIGTERM');
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString('utf8');
      expect(text).toContain('"finish_reason":"length"'); // the running request finished within the shutdown timeout
      expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      expect(await exit).toBe(0);
      expect(stderr()).toMatch(/SIGTERM: shutting down[\s\S]*stopped/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it("is the peer of `qllm generate --backend ascend --server URL`: the same greedy output as the local CPU run", async () => {
    const { child, url } = await serve(['--max-num-seqs', '2', '--max-model-len', '512']);
    try {
      const args = ['generate', '--model', modelDir, '--prompt', 'Today is', '--max-tokens', '6', '--temperature', '0', '--threads', '2', '--json'];
      const local = await run(process.execPath, [...nodeArgs, ...args]);
      const remote = await run(process.execPath, [...nodeArgs, ...args, '--backend', 'ascend', '--server', url]);
      const pick = (stdout: string) => (JSON.parse(stdout) as Array<{ outputs: Array<{ token_ids: number[]; text: string; finish_reason: string }> }>)
        .map((o) => o.outputs.map(({ token_ids, text, finish_reason }) => ({ token_ids, text, finish_reason })));
      expect(pick(remote.stdout)).toEqual(pick(local.stdout));
      expect(pick(local.stdout)[0]![0]!.token_ids).toHaveLength(6);
      expect(remote.stderr).toContain('backend ascend');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('rejects a bad flag naming it, before loading anything', async () => {
    const err = await run(process.execPath, [...nodeArgs, 'serve', '--model', modelDir, '--port', '70000']).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toMatch(/--port expects an integer in \[0, 65535\], got '70000'/);
  });

  it('documents its flags; the help\'s default queue bound is the server\'s', async () => {
    const { stdout } = await run(process.execPath, [...nodeArgs, 'serve', '--help']);
    for (const flag of ['--model', '--quantization', '--host', '--port', '--api-key', '--served-model-name', '--max-num-seqs', '--max-model-len', '--kv-cache-bytes', '--max-queue']) {
      expect(stdout).toContain(flag);
    }
    expect(SERVE_DEFAULT_MAX_QUEUE).toBe(DEFAULT_MAX_QUEUE);
  });
});
