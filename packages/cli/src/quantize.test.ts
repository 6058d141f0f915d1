/** `qllm quantize` as a user runs it, including being killed midway. */
import { execFile, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyQwen3 } from '@qllm/testing';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('./bin.ts', import.meta.url));
const nodeArgs = ['--conditions=source', '--import', 'tsx', bin];
const qllm = (args: string[]) => run(process.execPath, [...nodeArgs, ...args], { cwd: path.dirname(bin), maxBuffer: 16 << 20 });

let root: string;
let model: string;
let calibration: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-cli-quantize-'));
  model = path.join(root, 'tiny');
  await makeTinyQwen3(model, { seed: 4, numLayers: 3 });
  calibration = path.join(root, 'calibration.jsonl');
  const texts = Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: `Sample ${i}: the quick brown fox jumps over ${i} lazy dogs near the river bank.` }));
  await fs.writeFile(calibration, `${texts.join('\n')}\n`);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('qllm quantize', () => {
  it('writes a W8A8 folder and prints the fidelity table, then generates from it', async () => {
    const output = path.join(root, 'out');
    const { stdout } = await qllm(['quantize', '--model', model, '--output', output, '--calibration', calibration, '--num-samples', '20', '--alpha', '0.6']);
    expect(stdout).toMatch(/\| layer \| relative output error \|/);
    expect(stdout).toMatch(/top-1 agreement [\d.]+%, mean KL/);
    const fidelity = JSON.parse(await fs.readFile(path.join(output, 'fidelity.json'), 'utf8'));
    expect(fidelity.layers).toHaveLength(3);
    expect(fidelity.calibrationSamples + fidelity.evalSamples).toBe(20);
    const config = JSON.parse(await fs.readFile(path.join(output, 'config.json'), 'utf8'));
    expect(config.quantization_config.qllm.ptq_config.algoArgs.alpha).toBe(0.6);

    const g = await qllm(['generate', '--model', output, '--quantization', 'SmoothQuant', '--prompt', 'I am', '--max-tokens', '4', '--temperature', '0', '--json']);
    const [request] = JSON.parse(g.stdout);
    expect(request.outputs[0].token_ids).toHaveLength(4);
  });

  it('refuses an existing output without --overwrite, and missing calibration data', async () => {
    const output = path.join(root, 'exists');
    await fs.mkdir(output);
    await expect(qllm(['quantize', '--model', model, '--output', output, '--calibration', calibration])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/already exists \(pass overwrite \/ --overwrite/),
    });
    await expect(qllm(['quantize', '--model', model, '--output', path.join(root, 'x')])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/give calibration data/),
    });
    await expect(qllm(['quantize', '--model', model, '--output', path.join(root, 'x'), '--calibration', path.join(root, 'none.txt')])).rejects.toMatchObject({
      code: 1, stderr: expect.stringMatching(/none\.txt/),
    });
  });

  it('killed midway (SIGKILL), it leaves nothing at the output path', async () => {
    const output = path.join(root, 'killed');
    const child = spawn(process.execPath, [...nodeArgs, 'quantize', '--model', model, '--output', output, '--calibration', calibration, '--num-samples', '30'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // Wait until the first decoder layer's shard is in the temporary folder, then kill.
    for (let i = 0; i < 600; i++) {
      const partial = (await fs.readdir(root)).find((f) => f.startsWith('killed.partial-'));
      if (partial && (await fs.readdir(path.join(root, partial))).some((f) => f.startsWith('model-00002-'))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;
    await expect(fs.access(output)).rejects.toThrow();
    await expect(qllm(['generate', '--model', output, '--prompt', 'x'])).rejects.toMatchObject({ stderr: expect.stringMatching(/model folder not found/) });
  });
});
