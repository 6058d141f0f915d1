/** `qllm export-gguf` as a user runs it. */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyQwen3 } from '@qllm/testing';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('./bin.ts', import.meta.url));
const qllm = (args: string[]) =>
  run(process.execPath, ['--conditions=source', '--import', 'tsx', bin, ...args], { cwd: path.dirname(bin), maxBuffer: 16 << 20 });
const fails = (args: string[]) => qllm(args).then(
  () => { throw new Error('expected the command to fail'); },
  (e: { code: number; stderr: string }) => e,
);

let root: string;
let model: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-cli-gguf-'));
  model = path.join(root, 'tiny');
  await makeTinyQwen3(model, { seed: 8, numLayers: 1 });
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('qllm export-gguf', () => {
  it('writes a GGUF file and says what it wrote; an existing output needs --overwrite', async () => {
    const output = path.join(root, 'tiny-q8_0.gguf');
    const { stdout } = await qllm(['export-gguf', '--model', model, '--output', output, '--type', 'q8_0']);
    expect(stdout).toMatch(new RegExp(`^wrote ${output.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(Q8_0, 13 tensors, [\\d.]+ MiB\\) in [\\d.]+ s\\n$`));
    const head = await fs.readFile(output);
    expect(head.subarray(0, 4).toString()).toBe('GGUF');
    expect(head.readUInt32LE(4)).toBe(3);

    const again = await fails(['export-gguf', '--model', model, '--output', output]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists \(pass overwrite/);
    await qllm(['export-gguf', '--model', model, '--output', output, '--overwrite']);
    expect((await fs.readdir(root)).filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  it('rejects an unknown --type and a quantized folder, saying why', async () => {
    const bad = await fails(['export-gguf', '--model', model, '--output', path.join(root, 'x.gguf'), '--type', 'q4_0']);
    expect(bad.stderr).toMatch(/option '--type <type>' argument 'q4_0' is invalid\. Allowed choices are f16, q8_0/);

    const quantized = path.join(root, 'quantized');
    await fs.cp(model, quantized, { recursive: true });
    const config = JSON.parse(await fs.readFile(path.join(quantized, 'config.json'), 'utf8'));
    await fs.writeFile(path.join(quantized, 'config.json'), JSON.stringify({ ...config, quantization_config: { quant_method: 'compressed-tensors' } }));
    const q = await fails(['export-gguf', '--model', quantized, '--output', path.join(root, 'q.gguf')]);
    expect(q.code).toBe(1);
    expect(q.stderr).toMatch(/^qllm: .*config\.json: this is a quantized checkpoint .*export the float folder it was quantized from instead/m);
  });
});
