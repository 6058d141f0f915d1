/**
 * A8W8 on a CPU without VNNI, on whatever machine runs the suite: QEMU's user-mode emulator presents a Haswell
 * (AVX2, no AVX-512, no VNNI) to onnxruntime, whose MLAS then picks the same int8 kernels as on an AMD Zen 2/3 or
 * an Intel CPU before Cascade Lake — among them the u8×s8 kernel that saturates. The checkpoint is quantized
 * natively; the emulated process probes the int8 forms, picks one, and runs the checkpoint against the
 * plain-TypeScript simulation of what the file says.
 * Needs `qemu-x86_64` (Debian's qemu-user; .ci/run installs it). Without it the test fails under CI and is skipped,
 * saying why, elsewhere.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantize } from 'qllm';
import { makeTinyQwen3 } from '@qllm/testing';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const script = path.join(here, '__fixtures__/int8-cpu-check.ts');
const calibration = path.join(repo, 'plugins/quant-smoothquant/src/__fixtures__/calibration.txt');

function findQemu(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v qemu-x86_64'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const qemu = process.arch === 'x64' ? findQemu() : undefined;
if (!qemu) {
  const why = process.arch !== 'x64' ? 'not an x86-64 machine' : 'qemu-x86_64 not found (apt-get install qemu-user)';
  if (process.env.CI) throw new Error(`cpu-emulation.test.ts: ${why}; CI must run it (.ci/run installs qemu-user)`);
  console.warn(`skipping the emulated AVX2 CPU test: ${why}`);
}

interface CheckResult {
  choice?: { form: string; reason: string; exact: Record<string, boolean> };
  error?: string;
  maxDelta?: number;
}

function runEmulated(dir: string, env: Record<string, string> = {}): CheckResult {
  const r = spawnSync(qemu!, ['-cpu', 'Haswell', process.execPath, '--conditions=source', '--import', 'tsx', script, dir], {
    cwd: repo, encoding: 'utf8', timeout: 600_000, env: { ...process.env, ...env },
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{')) throw new Error(`emulated run failed (status ${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line) as CheckResult;
}

describe.skipIf(!qemu)('A8W8 on an emulated AVX2 CPU without VNNI', () => {
  let root: string;
  let a8w8: string;

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-emu-'));
    const float = path.join(root, 'float');
    await makeTinyQwen3(float, { hiddenSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 384, seed: 25, outlierChannels: { channels: [7, 33, 90], scale: 40 } });
    a8w8 = path.join(root, 'a8w8');
    await quantize({ model: float, output: a8w8, calibration: { files: [calibration] }, threads: 2 });
  }, 300_000);
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('detects the saturating u8×s8 kernel, picks an exact form, and runs what the file says', () => {
    const result = runEmulated(a8w8);
    console.log(`emulated Haswell: ${JSON.stringify(result)}`);
    expect(result.error).toBeUndefined();
    // The emulated CPU really is one where u8×s8 saturates: otherwise this test proves nothing.
    expect(result.choice!.exact.u8s8).toBe(false);
    expect(result.choice!.form).not.toBe('u8s8');
    expect(result.choice!.reason).toMatch(/u8s8 inexact/);
    expect(result.maxDelta!).toBeLessThan(1e-2);
  }, 600_000);

  it('refuses a forced u8s8 there, naming the probe result', () => {
    const result = runEmulated(a8w8, { QLLM_INT8_FORM: 'u8s8' });
    expect(result.error).toMatch(/form 'u8s8' \(from QLLM_INT8_FORM\) is not exact on this CPU: static M=1 K=1024/);
  }, 600_000);
});
