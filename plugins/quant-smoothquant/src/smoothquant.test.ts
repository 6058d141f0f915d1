/**
 * SmoothQuant end to end on a tiny Qwen3 with planted activation outliers: quantize → compressed-tensors folder →
 * serve with int8 onnxruntime ops, checked against a plain-TypeScript simulation of what the file says.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backends, Checkpoint, createGraphContext, INT8_GEMM_FORMS, KvCache, LLM, loadModel, modelArchitectures, ModelRunner, quantizationMethods,
  quantize, readSmallTensors, SamplingParams, type LinearMethodV1, type QuantizationMethodV1,
} from '@qllm/core';
import { cpu } from '@qllm/backend-cpu';
import { qwen3 } from '@qllm/model-qwen3';
import { loadW8A8Reference, logSoftmaxRows, makeTinyQwen3, topK } from '@qllm/testing';
import { smoothQuant } from './smoothquant-method.js';
import type { FidelityReport } from './fidelity.js';

modelArchitectures.register('Qwen3ForCausalLM', qwen3, { override: true });
backends.register('cpu', cpu, { override: true });
quantizationMethods.register('SmoothQuant', smoothQuant, { override: true });

const calibrationFile = fileURLToPath(new URL('./__fixtures__/calibration.txt', import.meta.url));
let root: string;
let floatDir: string;
let smoothDir: string;
let smoothReport: FidelityReport;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-sq-'));
  floatDir = path.join(root, 'float');
  // Trained LLMs have a few norm channels far larger than the rest; plant them (×40 on 3 of 128 channels).
  await makeTinyQwen3(floatDir, { hiddenSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 384, seed: 25, outlierChannels: { channels: [7, 33, 90], scale: 40 } });
  smoothDir = path.join(root, 'smooth');
  const result = await quantize({ model: floatDir, output: smoothDir, calibration: { files: [calibrationFile] }, threads: 2 });
  smoothReport = result.report as unknown as FidelityReport;
}, 300_000);
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('SmoothQuant A8W8 on a tiny Qwen3 with activation outliers', () => {
  it('writes the compressed-tensors int-quantized W8A8 layout vLLM reads', async () => {
    const config = JSON.parse(await fs.readFile(path.join(smoothDir, 'config.json'), 'utf8'));
    const qc = config.quantization_config;
    expect(qc).toMatchObject({ quant_method: 'compressed-tensors', format: 'int-quantized', ignore: ['lm_head'] });
    const groups = Object.values(qc.config_groups) as Array<{ targets: string[]; input_activations: Record<string, unknown> }>;
    expect(groups.map((g) => g.input_activations.strategy).sort()).toEqual(['tensor', 'token']);
    const dynamic = groups.find((g) => g.input_activations.dynamic)!;
    expect(dynamic.targets).toEqual(['re:model\\.layers\\.\\d+\\.mlp\\.down_proj$']);
    const ckpt = await Checkpoint.open(smoothDir);
    try {
      const q = 'model.layers.0.self_attn.q_proj';
      expect(ckpt.info(`${q}.weight`)).toMatchObject({ dtype: 'I8', shape: [128, 128] });
      expect(ckpt.info(`${q}.weight_scale`)).toMatchObject({ dtype: 'F32', shape: [128, 1] });
      expect(ckpt.info(`${q}.input_scale`)).toMatchObject({ shape: [1] });
      expect(ckpt.info(`${q}.input_zero_point`)).toMatchObject({ dtype: 'I8', shape: [1] });
      expect(ckpt.has('model.layers.0.mlp.down_proj.input_scale')).toBe(false);
      expect(ckpt.info('model.layers.0.mlp.down_proj.weight').dtype).toBe('I8');
      // Smoothing is folded into the norms: the outlier channels of input_layernorm shrink.
      const norm = (await ckpt.read('model.layers.0.input_layernorm.weight')).data as Float32Array;
      const normal = Math.abs(norm[0]!);
      expect(Math.abs(norm[7]!)).toBeLessThan(40 * normal / 2);
    } finally {
      await ckpt.close();
    }
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'fidelity.json']) {
      await expect(fs.access(path.join(smoothDir, f))).resolves.toBeUndefined();
    }
  });

  it('suppresses outliers: mean KL at least 5× lower than the same pipeline without smoothing', async () => {
    const none = await quantize({
      model: floatDir, output: path.join(root, 'none'), calibration: { files: [calibrationFile] }, threads: 2,
      config: { outliersSuppression: 'none', opnameBlacklist: ['lm_head'], layerPolicies: { '.*down_proj.*': { outliersSuppression: 'none', actQuantGranularity: 'per_token' } } },
    });
    const noneReport = none.report as unknown as FidelityReport;
    console.log(`mean KL: smooth ${smoothReport.meanKl.toExponential(3)} vs none ${noneReport.meanKl.toExponential(3)}; ` +
      `top-1 agreement: smooth ${(100 * smoothReport.top1Agreement).toFixed(1)}% vs none ${(100 * noneReport.top1Agreement).toFixed(1)}%`);
    expect(smoothReport.meanKl * 5).toBeLessThan(noneReport.meanKl);
    expect(smoothReport.top1Agreement).toBeGreaterThanOrEqual(noneReport.top1Agreement);
    expect(smoothReport.heldOut).toBe(true);
    expect(smoothReport.layers).toHaveLength(2);
  });

  // Every int8 GEMM form the CPU runs exactly (forced through QLLM_INT8_FORM), so the fallback forms are checked
  // on every machine too; the emulated AVX2 CPU test (packages/qllm) checks the automatic choice where u8s8 saturates.
  it.each(INT8_GEMM_FORMS)('runs what the file says in int8 form %s: onnxruntime int8 log-probs match a plain-TS simulation of the checkpoint within 1e-2', async (form) => {
    if (!(await cpu.int8GemmForm!()).exact[form]) {
      console.log(`int8 form ${form} is not exact on this CPU: the backend refuses it (cpu-backend tests check that)`);
      return;
    }
    process.env.QLLM_INT8_FORM = form;
    try {
      const loaded = await loadModel({ model: smoothDir, quantization: 'SmoothQuant', threads: 2 });
      expect(loaded.quantization?.name).toBe('SmoothQuant');
      const runner = new ModelRunner(loaded.session, loaded.config);
      const sim = await loadW8A8Reference(smoothDir);
      const prompt = loaded.folder.tokenizer!.encode('The river discovered a letter written in 1894 while everyone was asleep.');
      const got = logSoftmaxRows(await runner.forward(new KvCache(), prompt, prompt.map((_, i) => i)), loaded.config.vocabSize);
      const expected = sim.forward(prompt);
      let worst = 0;
      for (let t = 0; t < prompt.length; t++) {
        // Compare where it matters: the 50 most likely tokens of the simulation.
        for (const [id, lp] of topK(expected[t]!, 50)) worst = Math.max(worst, Math.abs(got[t]![id]! - lp));
      }
      console.log(`int8 form ${form}: max |Δ logprob| onnxruntime int8 vs TS simulation: ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-2);
      await loaded.session.dispose();
    } finally {
      delete process.env.QLLM_INT8_FORM;
    }
  });

  it('is detected from config.json, and an explicit name that disagrees is an error naming both', async () => {
    const detected = await loadModel({ model: smoothDir, threads: 1 });
    expect(detected.quantization?.name).toBe('SmoothQuant');
    await detected.session.dispose();
    quantizationMethods.register('OtherQuant', { specificationVersion: 'v1', name: 'OtherQuant', recognizes: () => false, getLinearMethod: () => null }, { override: true });
    await expect(loadModel({ model: smoothDir, quantization: 'OtherQuant' })).rejects.toThrow(/'OtherQuant' was requested.*'SmoothQuant'/);
  });
});

describe('packed linears', () => {
  // The same method without applyPacked: one GEMM per linear.
  const unpacked = (m: LinearMethodV1 | null): LinearMethodV1 | null => m && { apply: (ctx, layer, x) => m.apply(ctx, layer, x) };
  const onePerLinear: QuantizationMethodV1 = { ...smoothQuant, name: 'SmoothQuantOnePerLinear', getLinearMethod: (l, m) => unpacked(smoothQuant.getLinearMethod(l, m)) };
  quantizationMethods.register('SmoothQuantOnePerLinear', onePerLinear, { override: true });

  it('q/k/v and gate/up run as one int8 GEMM each (equal activation scales), with the same tokens and logprobs as one GEMM per linear', async () => {
    const ckpt = await Checkpoint.open(smoothDir);
    try {
      const raw = JSON.parse(await fs.readFile(path.join(smoothDir, 'config.json'), 'utf8'));
      const config = qwen3.parseConfig(raw, 'config.json');
      const form = (await cpu.int8GemmForm!()).form;
      const smallTensors = await readSmallTensors(ckpt);
      const counts = (method: QuantizationMethodV1) => {
        const ctx = createGraphContext({
          checkpoint: ckpt, config, int8Form: form, supportsOp: cpu.supportsOp, smallTensors,
          linearMethod: (l) => method.getLinearMethod(l, { config, quantizationConfig: raw.quantization_config }),
        });
        qwen3.buildGraph(ctx, config);
        return ctx.g.opCounts();
      };
      // 7 linears a layer, the head float: 4 int8 GEMMs a layer packed (qkv, o, gate_up, down), 7 alone.
      expect(counts(smoothQuant).MatMulIntegerToFloat).toBe(4 * config.numLayers);
      expect(counts(onePerLinear).MatMulIntegerToFloat).toBe(7 * config.numLayers);
    } finally {
      await ckpt.close();
    }
    const run = async (quantization: string) => {
      const llm = new LLM({ model: smoothDir, quantization, threads: 2, maxModelLen: 128, graphCache: false });
      try {
        return await llm.generate(['I am', 'Today is a long day and'], new SamplingParams({ temperature: 0, maxTokens: 12, logprobs: 3, ignoreEos: true }));
      } finally {
        await llm.close();
      }
    };
    const [packed, alone] = [await run('SmoothQuant'), await run('SmoothQuantOnePerLinear')];
    for (let i = 0; i < 2; i++) {
      expect(packed[i]!.outputs[0]!.tokenIds).toEqual(alone[i]!.outputs[0]!.tokenIds);
      expect(packed[i]!.outputs[0]!.logprobs).toEqual(alone[i]!.outputs[0]!.logprobs);
    }
  });
});

describe('bad input', () => {
  it('refuses an existing output folder unless overwrite', async () => {
    await expect(quantize({ model: floatDir, output: smoothDir, calibration: { files: [calibrationFile] } })).rejects.toThrow(/already exists.*overwrite/);
  });

  it('names a missing or empty calibration file', async () => {
    const out = path.join(root, 'x');
    await expect(quantize({ model: floatDir, output: out, calibration: { files: [path.join(root, 'nope.txt')] } })).rejects.toThrow(/nope\.txt/);
    const empty = path.join(root, 'empty.txt');
    await fs.writeFile(empty, '\n\n');
    await expect(quantize({ model: floatDir, output: out, calibration: { files: [empty] } })).rejects.toThrow(/empty\.txt/);
    await expect(fs.access(out)).rejects.toThrow();
  });

  it('refuses conflicting layer policies before doing any work', async () => {
    const out = path.join(root, 'conflict');
    await expect(quantize({
      model: floatDir, output: out, calibration: { files: [calibrationFile] },
      config: { layerPolicies: { '.*mlp.*': { actQuantGranularity: 'per_token' }, '.*down_proj': { outliersSuppression: 'none' } } },
    })).rejects.toThrow(/\.\*mlp\.\*.*\.\*down_proj|\.\*down_proj.*\.\*mlp\.\*/);
    await expect(fs.access(out)).rejects.toThrow();
  });

  it('leaves no folder that loads when it fails midway', async () => {
    const out = path.join(root, 'midway');
    await expect(quantize({
      model: floatDir, output: out, calibration: { files: [calibrationFile] },
      onProgress: ({ layer }) => {
        if (layer === 1) throw new Error('killed');
      },
    })).rejects.toThrow('killed');
    await expect(fs.access(out)).rejects.toThrow();
    expect((await fs.readdir(root)).filter((f) => f.startsWith('midway'))).toEqual([]);
  });
});
