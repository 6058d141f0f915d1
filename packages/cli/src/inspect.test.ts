/** `qllm inspect` on each layout, and `qllm quantize --backend ascend`, as a user runs them. */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyQwen3 } from '@qllm/testing';
import type { InspectReport } from './inspect.js';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('./bin.ts', import.meta.url));
const qllm = (args: string[]) => run(process.execPath, ['--conditions=source', '--import', 'tsx', bin, ...args], { cwd: path.dirname(bin), maxBuffer: 16 << 20 });
const inspectJson = async (dir: string) => JSON.parse((await qllm(['inspect', dir, '--json'])).stdout) as InspectReport;

let root: string;
let model: string;
let calibration: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-cli-inspect-'));
  model = path.join(root, 'tiny');
  // head_dim·heads ≠ hidden, GQA.
  await makeTinyQwen3(model, { hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 160, numLayers: 3, seed: 5 });
  calibration = path.join(root, 'calibration.txt');
  await fs.writeFile(calibration, Array.from({ length: 12 }, (_, i) => `Sample ${i}: the quick brown fox jumps over ${i} lazy dogs near the river bank.`).join('\n\n'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('qllm inspect', () => {
  it('a float Hugging Face folder', async () => {
    const { stdout } = await qllm(['inspect', model]);
    expect(stdout).toContain('layout        float, Hugging Face layout');
    expect(stdout).toContain('architecture  Qwen3ForCausalLM, 3 layers, hidden 64');
    expect(stdout).toContain('quantization  none');
    expect(stdout).toMatch(/^ {2}cpu +runs it: available$/m);
    const r = await inspectJson(model);
    expect(r.layout).toBe('float');
    expect(r.tensors.count).toBe(1 + 3 * 11 + 1); // embedding, 11 per layer, final norm (tied: no lm_head)
    expect(Object.keys(r.tensors.byDtype)).toEqual(['BF16']);
    expect(r.backends.map((b) => b.name)).toContain('cpu');
  });

  it("a Golden Stick folder from `qllm quantize --backend ascend`, which also generates on the CPU", async () => {
    const output = path.join(root, 'ascend');
    await qllm(['quantize', '--model', model, '--output', output, '--calibration', calibration, '--num-samples', '10', '--backend', 'ascend']);
    await expect(fs.access(path.join(output, 'quantization_description.json'))).resolves.toBeUndefined();
    const { stdout } = await qllm(['inspect', output]);
    expect(stdout).toContain('layout        golden-stick: MindFormers layout (by tensor names and quantization_description.json)');
    expect(stdout).toContain('quantization  SmoothQuant');
    expect(stdout).toContain('W8A8, static per-tensor int8 activations: self_attn.q_proj, self_attn.k_proj, self_attn.v_proj, self_attn.o_proj, mlp.gate_proj, mlp.up_proj (layers 0-2)');
    expect(stdout).toContain('W8A8, dynamic per-token int8 activations: mlp.down_proj (layers 0-2)');
    expect(stdout).toContain('float: lm_head');
    const r = await inspectJson(output);
    expect(r.layout).toBe('golden-stick');
    expect(r.quantization?.perLinear['model.layers.1.mlp.down_proj']).toBe('W8A8_DYNAMIC');
    expect(r.tensors.byDtype.I8?.count).toBe(3 * 13); // 7 weights + 6 input_zp per layer
    expect(r.tensors.byDtype.I32?.count).toBe(3 * 6);
    expect(r.backends.find((b) => b.name === 'cpu')).toMatchObject({ available: true, runs: true });
    // An 'ascend' backend may or may not be registered (and loadable) here; when listed, it says why it cannot run it.
    for (const b of r.backends.filter((x) => x.name !== 'cpu')) expect(b.runs || typeof b.reason === 'string' || typeof b.note === 'string').toBe(true);

    const g = await qllm(['generate', '--model', output, '--quantization', 'SmoothQuant', '--prompt', 'I am', '--max-tokens', '4', '--temperature', '0', '--json']);
    expect(JSON.parse(g.stdout)[0].outputs[0].token_ids).toHaveLength(4);
  }, 120_000);

  it("a compressed-tensors W8A8 folder from `qllm quantize` (backend 'cpu')", async () => {
    const output = path.join(root, 'cpu');
    await qllm(['quantize', '--model', model, '--output', output, '--calibration', calibration, '--num-samples', '10']);
    const { stdout } = await qllm(['inspect', output]);
    expect(stdout).toContain('layout        compressed-tensors int-quantized W8A8 (config.json quantization_config)');
    expect(stdout).toContain('mlp.down_proj (layers 0-2)');
    const r = await inspectJson(output);
    expect(r.layout).toBe('compressed-tensors');
    expect(r.quantization?.perLinear['model.layers.0.self_attn.q_proj']).toBe('W8A8');
    expect(r.quantization?.perLinear.lm_head).toBe('float');
    const ascend = r.backends.find((b) => b.name === 'ascend');
    if (ascend) expect(ascend.runs).toBe(false); // vLLM-MindSpore does not read compressed-tensors
  }, 120_000);

  it('a folder that is not a model is an error naming it', async () => {
    await expect(qllm(['inspect', path.join(root, 'nope')])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/nope: model folder not found/) });
  });
});
