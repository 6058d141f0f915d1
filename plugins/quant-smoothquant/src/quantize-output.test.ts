/**
 * quantize() and its output folder when runs collide or were killed, and bad input that must not produce a model:
 * two runs to one output, an output that appears meanwhile, leftover partial folders, regexes that would backtrack,
 * config keys named like Object.prototype members, binary calibration data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, modelArchitectures } from '@qllm/core';
import { cpu } from '@qllm/backend-cpu';
import { qwen3 } from '@qllm/model-qwen3';
import { makeTinyQwen3 } from '@qllm/testing';
import { partialFolderName } from './output-folder.js';
import { quantize, type QuantizeOptions } from './quantize.js';

modelArchitectures.register('Qwen3ForCausalLM', qwen3, { override: true });
backends.register('cpu', cpu, { override: true });

let root: string;
let model: string;
let calibration: string;
let sleeper: ChildProcess;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-quantize-output-'));
  model = path.join(root, 'tiny');
  await makeTinyQwen3(model, { seed: 3, numLayers: 1 });
  calibration = path.join(root, 'calibration.txt');
  await fs.writeFile(calibration, Array.from({ length: 6 }, (_, i) => `Sample ${i}: the quick brown fox jumps over ${i} lazy dogs.`).join('\n\n'));
  sleeper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
}, 60_000);
afterAll(async () => {
  sleeper.kill();
  await fs.rm(root, { recursive: true, force: true });
});

const run = (output: string, extra: Partial<QuantizeOptions> = {}) =>
  quantize({ model, output, calibration: { files: [calibration] }, numSamples: 6, maxSeqLen: 16, threads: 1, ...extra });

/** What is next to `output` that starts with its name (the folder, its lock, partial and old folders). */
const around = async (output: string) => (await fs.readdir(path.dirname(output))).filter((f) => f.startsWith(path.basename(output))).sort();

async function deadProcessPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

describe('two quantize runs to the same output', () => {
  it('exactly one succeeds; the other fails at once naming the output, the lock file and the pid holding it', async () => {
    const output = path.join(root, 'both');
    const results = await Promise.allSettled([run(output), run(output)]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(1);
    expect(String(failed[0]!.reason)).toContain(`${output} is being written by another quantize run (pid ${process.pid} on ${os.hostname()}`);
    expect(String(failed[0]!.reason)).toContain(`lock file ${output}.lock`);
    expect(await around(output)).toEqual(['both']); // no lock, no partial folder left
    expect(JSON.parse(await fs.readFile(path.join(output, 'fidelity.json'), 'utf8')).layers).toHaveLength(1);
  }, 120_000);

  it('also with overwrite: the second does not replace the first one’s result under it', async () => {
    const output = path.join(root, 'both-overwrite');
    const results = await Promise.allSettled([run(output, { overwrite: true }), run(output, { overwrite: true })]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(String(results.find((r) => r.status === 'rejected')!.reason)).toMatch(/both-overwrite\.lock/);
    expect(await around(output)).toEqual(['both-overwrite']);
  }, 120_000);

  it('refuses to replace an output that appeared while quantizing, unless overwrite', async () => {
    const output = path.join(root, 'appeared');
    const appear = async () => {
      await fs.mkdir(output, { recursive: true });
      await fs.writeFile(path.join(output, 'mine.txt'), 'keep me');
    };
    let made: Promise<void> | undefined;
    const onProgress = () => {
      made ??= appear();
    };
    await expect(run(output, { onProgress })).rejects.toThrow(`${output} appeared while quantizing (made by something else): nothing was replaced`);
    expect(await fs.readdir(output)).toEqual(['mine.txt']);
    expect(await around(output)).toEqual(['appeared']);

    await fs.rm(output, { recursive: true });
    made = undefined;
    const result = await run(output, { onProgress, overwrite: true });
    expect(result.output).toBe(output);
    expect(await fs.readdir(output)).toContain('config.json');
    expect(await fs.readdir(output)).not.toContain('mine.txt');
    expect(await around(output)).toEqual(['appeared']); // the old folder was removed after the swap
  }, 120_000);

  it('takes over the lock of a killed run', async () => {
    const output = path.join(root, 'killed-lock');
    const dead = await deadProcessPid();
    await fs.writeFile(`${output}.lock`, JSON.stringify({ pid: dead, hostname: os.hostname(), startedAt: new Date().toISOString(), id: 'x' }));
    await run(output);
    expect(await around(output)).toEqual(['killed-lock']);
  }, 120_000);
});

describe('partial folders of killed runs', () => {
  it('are removed on start; a live run’s partial folder is left alone', async () => {
    const output = path.join(root, 'leftovers');
    const named = (pid: number) => partialFolderName(output).replace(`.partial-${process.pid}-`, `.partial-${pid}-`);
    const stale = named(await deadProcessPid());
    const live = named(sleeper.pid!);
    for (const dir of [stale, live]) {
      await fs.mkdir(dir);
      await fs.writeFile(path.join(dir, 'model-00001-of-00002.safetensors'), 'half written');
    }
    const logged: string[] = [];
    await run(output, { log: (m) => logged.push(m) });
    expect(await around(output)).toEqual(['leftovers', path.basename(live)]);
    expect(logged).toContain(`removed ${stale}, left by a run that was interrupted (pid ${stale.split('.partial-')[1]!.split('-')[0]} is gone)`);
  }, 120_000);
});

describe('config input that must not hang or garble quantize', () => {
  it('finishes with layer policies that would backtrack catastrophically', async () => {
    const output = path.join(root, 'evil-regex');
    const result = await run(output, { config: { layerPolicies: [['(.*)*X', {}], ['(a+)+$', {}], ['(a|a)*b', {}]] } });
    expect(result.warnings).toEqual(expect.arrayContaining([
      "layer policy '(.*)*X' matches no layer", "layer policy '(a+)+$' matches no layer", "layer policy '(a|a)*b' matches no layer",
    ]));
  }, 60_000);

  it.each(['toString', 'constructor', '__proto__'])("reports a '%s' key as an unknown field", async (key) => {
    const output = path.join(root, `key-${key}`);
    await expect(run(output, { config: JSON.parse(`{"${key}": {}}`) as Record<string, unknown> }))
      .rejects.toThrow(`PTQ config: invalid field — (root): Unrecognized key: "${key}"`);
    expect(await around(output)).toEqual([]);
  });
});

describe('binary calibration data', () => {
  it('is refused, naming the file, and no model is written', async () => {
    const garbage = path.join(root, 'garbage.txt');
    await fs.writeFile(garbage, Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 2654435761) >>> 24)));
    const output = path.join(root, 'from-garbage');
    await expect(run(output, { calibration: { files: [garbage] } })).rejects.toThrow(new RegExp(`^${garbage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line \\d+: the calibration text file is not valid UTF-8 text`));
    expect(await around(output)).toEqual([]);
  });
});
