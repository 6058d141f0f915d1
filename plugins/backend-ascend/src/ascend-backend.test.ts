/**
 * The 'ascend' backend without an NPU: the real probe here answers unavailable, listing what it looked for; a fake
 * CANN tree in a temporary folder makes it available; `new LLM({ backend: 'ascend' })` fails before reading weights
 * (a truncated safetensors file still gives the ascend message) with the vLLM-MindSpore command for the folder; the
 * command line for each layout; and the launch path (spawn, wait for /health, stop on close) with a stand-in server.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, CheckpointError, ConfigError, LLM } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';
import { createAscendBackend, inspectFolder, probeCann, shellLine, vllmMindSporeCommand, type CannProbeInputs } from './index.js';

const FAKE_VLLM = path.join(path.dirname(fileURLToPath(import.meta.url)), '__fixtures__', 'fake-vllm.mjs');

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'qllm-ascend-'));
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** A machine with CANN, in a folder: toolkit with libascendcl.so, npu-smi and vllm-mindspore on PATH, device nodes. */
async function fakeCann(name: string, o: { devices?: number; vllm?: boolean; lib?: boolean } = {}): Promise<Partial<CannProbeInputs>> {
  const base = path.join(root, name);
  const home = path.join(base, 'Ascend', 'ascend-toolkit', 'latest');
  await mkdir(path.join(home, 'lib64'), { recursive: true });
  if (o.lib !== false) await writeFile(path.join(home, 'lib64', 'libascendcl.so'), '');
  const bin = path.join(base, 'bin');
  await mkdir(bin, { recursive: true });
  for (const tool of ['npu-smi', ...(o.vllm === false ? [] : ['vllm-mindspore'])]) {
    await writeFile(path.join(bin, tool), '#!/bin/sh\n');
    await chmod(path.join(bin, tool), 0o755);
  }
  const dev = path.join(base, 'dev');
  await mkdir(dev, { recursive: true });
  await writeFile(path.join(dev, 'davinci_manager'), '');
  for (let i = 0; i < (o.devices ?? 2); i++) await writeFile(path.join(dev, `davinci${i}`), '');
  return { env: { ASCEND_TOOLKIT_HOME: home, PATH: bin }, devDir: dev, ascendRoot: path.join(base, 'Ascend') };
}

describe('probe', () => {
  it('answers unavailable on this machine, listing each thing it looked for', async () => {
    const p = await probeCann();
    expect(p.available).toBe(false);
    expect(p.npu).toBe(false);
    const missing = p.missing.join('\n');
    for (const what of ['ASCEND_HOME_PATH', 'ASCEND_TOOLKIT_HOME', 'libascendcl.so', '/usr/local/Ascend/ascend-toolkit/latest', 'npu-smi', '/dev/davinci<N>', 'vllm-mindspore']) {
      expect(missing).toContain(what);
    }
    const backend = createAscendBackend();
    const a = await backend.isAvailable();
    expect(a.available).toBe(false);
    expect(a.reason).toMatch(/ASCEND_HOME_PATH is not set.*ASCEND_TOOLKIT_HOME is not set.*libascendcl\.so.*npu-smi.*davinci.*vllm-mindspore/s);
    expect(backend.score()).toBeLessThan(1); // below the CPU backend's
  });

  it('finds a fake CANN tree: toolkit, libascendcl.so, npu-smi, device nodes, vllm-mindspore; scores above the CPU', async () => {
    const inputs = await fakeCann('full');
    const p = await probeCann(inputs);
    expect(p).toMatchObject({ available: true, npu: true, cann: true, server: true, missing: ['ASCEND_HOME_PATH is not set'] });
    expect(p.devices.map((d) => path.basename(d))).toEqual(['davinci0', 'davinci1']); // not davinci_manager
    expect(p.libascendcl).toBe(path.join(inputs.env!.ASCEND_TOOLKIT_HOME!, 'lib64', 'libascendcl.so'));
    const backend = createAscendBackend({ probe: inputs });
    expect(await backend.isAvailable()).toEqual({ available: true });
    expect(backend.score()).toBeGreaterThan(1);
  });

  it('says what is missing when only part is there (no devices; no runtime library; a home that does not exist)', async () => {
    const noDevices = await probeCann(await fakeCann('no-devices', { devices: 0 }));
    expect(noDevices).toMatchObject({ available: false, npu: false, cann: true });
    expect(noDevices.missing.join()).toContain('davinci<N>');
    const noLib = await fakeCann('no-lib', { lib: false });
    const p = await probeCann({ ...noLib, env: { ...noLib.env, ASCEND_HOME_PATH: path.join(root, 'nowhere') } });
    expect(p).toMatchObject({ available: false, npu: true, cann: false });
    expect(p.missing.join('\n')).toMatch(/ASCEND_HOME_PATH=.*nowhere does not exist/);
    expect(p.missing.join('\n')).toContain('libascendcl.so (the CANN runtime) not found');
    const backend = createAscendBackend({ probe: await fakeCann('no-vllm', { vllm: false }) });
    expect((await backend.isAvailable()).reason).toContain('vllm-mindspore (pip install vllm-mindspore) not on PATH');
    expect(backend.score()).toBeGreaterThan(1); // an NPU is here, even if it cannot serve yet
  });
});

describe('serve command', () => {
  it('chooses the flags from the folder: golden-stick (MindFormers / HF names), msModelSlim, float; refuses compressed-tensors', async () => {
    const dir = (name: string) => path.join(root, 'layouts', name);
    for (const name of ['gs-mf', 'gs-hf', 'modelslim', 'float', 'ct']) await mkdir(dir(name), { recursive: true });
    await writeFile(path.join(dir('gs-mf'), 'quantization_description.json'), JSON.stringify({ 'model.layers.0.attention.wq._layer.weight': 'W8A8', 'model.tok_embeddings.embedding_weight': 'FLOAT' }));
    await writeFile(path.join(dir('gs-hf'), 'quantization_description.json'), JSON.stringify({ 'model.layers.0.self_attn.q_proj.weight': 'W8A8' }));
    await writeFile(path.join(dir('modelslim'), 'quant_model_description.json'), JSON.stringify({ 'model.layers.0.self_attn.q_proj.weight': 'W8A8' }));
    await writeFile(path.join(dir('float'), 'config.json'), JSON.stringify({ architectures: ['Qwen3ForCausalLM'] }));
    await writeFile(path.join(dir('ct'), 'config.json'), JSON.stringify({ quantization_config: { quant_method: 'compressed-tensors' } }));

    const line = async (name: string) => shellLine(vllmMindSporeCommand(dir(name), await inspectFolder(dir(name))));
    expect(await line('gs-mf')).toBe(`VLLM_MS_MODEL_BACKEND=MindFormers vllm-mindspore serve ${dir('gs-mf')} --quantization golden-stick --port 8000`);
    expect(await line('gs-hf')).toBe(`VLLM_MS_MODEL_BACKEND=Native vllm-mindspore serve ${dir('gs-hf')} --quantization golden-stick --port 8000`);
    expect(await line('modelslim')).toBe(`vllm-mindspore serve ${dir('modelslim')} --quantization ascend --port 8000`);
    expect(await line('float')).toBe(`vllm-mindspore serve ${dir('float')} --port 8000`);
    await expect(line('ct')).rejects.toThrow(/compressed-tensors.*qllm quantize --backend ascend/);

    const full = vllmMindSporeCommand('rel/dir', { kind: 'float' }, {
      host: '0.0.0.0', port: 9000, servedModelName: 'm', maxModelLen: 4096, maxNumSeqs: 16, seed: 3, maxLogprobs: 5, extraArgs: ['--tensor-parallel-size', '2'],
    });
    expect(full.args).toEqual(['serve', path.resolve('rel/dir'), '--host', '0.0.0.0', '--port', '9000', '--served-model-name', 'm', '--max-model-len', '4096',
      '--max-num-seqs', '16', '--seed', '3', '--max-logprobs', '5', '--tensor-parallel-size', '2']);
    expect(shellLine({ command: 'vllm-mindspore', args: ['serve', "/a b/it's"], env: {} })).toBe(`vllm-mindspore serve '/a b/it'\\''s'`);
  });
});

describe("new LLM({ backend: 'ascend' }) without an NPU", () => {
  it('fails before reading weights (a truncated checkpoint), saying what was looked for and the vLLM-MindSpore command', async () => {
    const dir = path.join(root, 'truncated');
    await makeTinyQwen3(dir, { vocabSize: 4096, tokenizer: false, seed: 5 });
    const file = path.join(dir, 'model.safetensors');
    const size = (await readFile(file)).length;
    await truncate(file, Math.floor(size / 2));
    // The same folder on the CPU is a checkpoint error: the truncation is real.
    await expect(new LLM({ model: dir, backend: 'cpu' }).ready()).rejects.toBeInstanceOf(CheckpointError);

    const error = await new LLM({ model: dir, backend: 'ascend' }).ready().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/^backend 'ascend' is not available here: looked for CANN, an Ascend NPU and vLLM-MindSpore: missing /);
    for (const what of ['ASCEND_HOME_PATH', 'ASCEND_TOOLKIT_HOME', 'libascendcl.so', 'npu-smi', '/dev/davinci<N>']) expect(message).toContain(what);
    expect(message).toContain(`run \`vllm-mindspore serve ${dir} --port 8000\` there`);
    expect(message).toContain("backend: 'ascend', server: 'http://<that host>:8000'");
  });

  it('a compressed-tensors folder: says vLLM-MindSpore cannot serve it and how to write the Ascend layout', async () => {
    const dir = path.join(root, 'ct-model');
    await makeTinyQwen3(dir, { vocabSize: 4096, tokenizer: false, seed: 6 });
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'));
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, quantization_config: { quant_method: 'compressed-tensors' } }));
    await expect(new LLM({ model: dir, backend: 'ascend' }).ready()).rejects.toThrow(/vLLM-MindSpore cannot serve .*qllm quantize --backend ascend/);
  });

  it('server needs a remote backend; a URL must be http(s)', async () => {
    await expect(new LLM({ model: root, backend: 'cpu', server: 'http://127.0.0.1:1' }).ready()).rejects.toThrow(/backend 'cpu' runs models in this process/);
    await expect(new LLM({ model: root, server: 'http://127.0.0.1:1' }).ready()).rejects.toThrow(/needs the backend that drives it/);
    await expect(new LLM({ model: root, backend: 'ascend', server: 'localhost:8000' }).ready()).rejects.toThrow(/must be an http\(s\) URL/);
  });
});

describe('launching vLLM-MindSpore where an NPU is present (a stand-in server)', () => {
  const fakeSpawn = (record: string, mode = '') => (command: string, args: string[], options: Parameters<typeof spawn>[2]) => {
    expect(command).toBe('vllm-mindspore');
    return spawn(process.execPath, [FAKE_VLLM, ...args], { ...options, env: { ...options.env, FAKE_VLLM_RECORD: record, FAKE_VLLM_MODE: mode } });
  };
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('builds the command for the folder, waits for /health, serves through it, and stops it on close', async () => {
    const dir = path.join(root, 'gs-launch');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'quantization_description.json'), JSON.stringify({ 'model.layers.0.attention.wq._layer.weight': 'W8A8' }));
    const record = path.join(root, 'launch.json');
    const backend = createAscendBackend({ probe: await fakeCann('launch'), spawn: fakeSpawn(record) });
    expect((await backend.isAvailable({ model: dir })).available).toBe(true);
    const progress: string[] = [];
    const engine = await backend.createRemoteEngine!({
      model: dir, maxModelLen: 512, maxNumSeqs: 4, seed: 1, maxLogprobs: 20, onProgress: (m) => progress.push(m),
      backendOptions: { servedModelName: 'gs', env: { ASCEND_RT_VISIBLE_DEVICES: '1' }, apiKey: 'k3y' },
    });
    const seen = JSON.parse(await readFile(record, 'utf8'));
    const port = seen.args[seen.args.indexOf('--port') + 1];
    expect(seen.args).toEqual(['serve', dir, '--quantization', 'golden-stick', '--host', '127.0.0.1', '--port', port, '--served-model-name', 'gs',
      '--max-model-len', '512', '--max-num-seqs', '4', '--seed', '1', '--max-logprobs', '20', '--api-key', 'k3y']);
    expect(seen.backend).toBe('MindFormers');
    expect(seen.visible).toBe('1');
    expect(progress[0]).toContain("--api-key '***'"); // the key is not printed
    expect(progress[0]).not.toContain('k3y');
    expect(engine.url).toBe(`http://127.0.0.1:${port}`);
    expect(engine.servedModelName).toBe('gs');
    expect(engine.maxModelLen).toBe(512);
    expect(alive(seen.pid)).toBe(true);
    await engine.close();
    expect(alive(seen.pid)).toBe(false);
  });

  it('a server that exits before it is ready: the error carries its output; a missing program says so', async () => {
    const dir = path.join(root, 'float-launch');
    await mkdir(dir, { recursive: true });
    const backend = createAscendBackend({ probe: await fakeCann('launch-fail'), spawn: fakeSpawn(path.join(root, 'fail.json'), 'exit') });
    await expect(backend.createRemoteEngine!({ model: dir })).rejects.toThrow(/exited \(code 3\) before it was ready; its last output:\nRuntimeError: no NPU found/);
    const missing = createAscendBackend({ probe: await fakeCann('launch-missing') });
    await expect(missing.createRemoteEngine!({ model: dir, backendOptions: { command: path.join(root, 'no-such-vllm') } })).rejects.toThrow(/not found on PATH/);
  });

  it('a server that never becomes healthy is stopped at the startup timeout', async () => {
    const dir = path.join(root, 'float-launch');
    const record = path.join(root, 'hang.json');
    const backend = createAscendBackend({ probe: await fakeCann('launch-hang'), spawn: fakeSpawn(record, 'hang') });
    await expect(backend.createRemoteEngine!({ model: dir, backendOptions: { startupTimeoutMs: 1500 } })).rejects.toThrow(/did not answer .*\/health within 2 s/);
    expect(alive(JSON.parse(await readFile(record, 'utf8')).pid)).toBe(false);
  });

  it('with an NPU here, new LLM({ model }) picks the ascend backend (it outscores the CPU) and starts the server; close stops it', async () => {
    const dir = path.join(root, 'auto');
    await makeTinyQwen3(dir, { vocabSize: 4096, tokenizer: false, seed: 7 });
    const record = path.join(root, 'auto.json');
    const original = await backends.get('ascend');
    backends.register('ascend', createAscendBackend({ probe: await fakeCann('auto'), spawn: fakeSpawn(record) }), { override: true });
    try {
      const llm = new LLM({ model: dir, maxModelLen: 128 });
      const loaded = await llm.ready();
      expect(loaded.backend.name).toBe('ascend');
      const seen = JSON.parse(await readFile(record, 'utf8'));
      expect(seen.args.slice(0, 2)).toEqual(['serve', dir]);
      expect(seen.args).toContain('--max-model-len');
      expect(alive(seen.pid)).toBe(true);
      await llm.close();
      expect(alive(seen.pid)).toBe(false);
    } finally {
      backends.register('ascend', original, { override: true });
    }
  });
});
