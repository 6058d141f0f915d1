/** The seed's two scripts, run as a user would: quantize a tiny Qwen3 on a small CEval folder, then serve it. */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CEVAL_SUBJECTS } from '@qllm/quant-smoothquant';
import { makeTinyQwen3 } from '@qllm/testing';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const script = (name: string, args: string[]) =>
  run(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(here, name), ...args], { cwd: here, maxBuffer: 16 << 20 });

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-examples-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

it('quantize-qwen3.ts then offline-inference.ts, on a generated model and a CEval-format folder', async () => {
  const model = path.join(root, 'Qwen3-tiny');
  await makeTinyQwen3(model, { seed: 9 });
  const dev = path.join(root, 'ceval', 'dev');
  await fs.mkdir(dev, { recursive: true });
  for (const [subject, chinese] of CEVAL_SUBJECTS.slice(0, 3)) {
    const rows = Array.from({ length: 5 }, (_, i) =>
      `${i},"关于${chinese}的第${i + 1}个问题，选哪一个？",选项甲,"选项乙, 含逗号",选项丙,选项丁,${'ABCD'[i % 4]}`);
    await fs.writeFile(path.join(dev, `${subject}_dev.csv`), `id,question,A,B,C,D,answer\n${rows.join('\n')}\n`);
  }
  const output = path.join(root, 'Qwen3-tiny-A8W8');
  const q = await script('quantize-qwen3.ts', [model, dev, output, '12']);
  expect(q.stdout).toMatch(/CEval: 12 calibration samples from 3 subjects/);
  expect(q.stdout).toMatch(/top-1 agreement/);
  const config = JSON.parse(await fs.readFile(path.join(output, 'config.json'), 'utf8'));
  expect(config.quantization_config.quant_method).toBe('compressed-tensors');
  expect(config.quantization_config.qllm.ptq_config.layerPolicies).toEqual([
    ['.*down_proj.*', { weightQuantDtype: 'int8', actQuantDtype: 'int8', actQuantGranularity: 'per_token', outliersSuppression: 'none' }],
  ]);

  const g = await script('offline-inference.ts', [output]);
  const lines = g.stdout.trim().split('\n');
  expect(lines.map((l) => /^Prompt: "(.*?)", Generated text: ".*"$/.exec(l)?.[1])).toEqual(['I am', 'Today is', 'Llama is']);
});
