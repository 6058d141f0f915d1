/**
 * Is there an Ascend NPU with CANN here? Looks, without loading anything, for what vLLM-MindSpore needs: the CANN
 * toolkit (ASCEND_HOME_PATH / ASCEND_TOOLKIT_HOME, libascendcl.so under them or the usual install path), the driver
 * (`npu-smi`, /dev/davinci* device nodes) and `vllm-mindspore` itself; and says what it found and what is missing.
 * Its inputs (environment, file system) are injectable, so a test can stand a fake CANN tree in a temporary folder.
 */
import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import path from 'node:path';

/** Where the probe looks: the process's environment and file system unless a test says otherwise. */
export interface CannProbeInputs {
  env: Readonly<Record<string, string | undefined>>;
  /** Whether a path exists (a file, folder or device node). */
  exists(file: string): Promise<boolean>;
  /** Whether a path is an executable file. */
  executable(file: string): Promise<boolean>;
  /** The names in a folder ([] when it cannot be read). */
  list(dir: string): Promise<string[]>;
  /** The device folder (default '/dev'). */
  devDir: string;
  /** CANN's default install prefix (default '/usr/local/Ascend'). */
  ascendRoot: string;
}

export const defaultProbeInputs: CannProbeInputs = {
  env: process.env,
  exists: (file) => access(file, constants.F_OK).then(() => true, () => false),
  executable: (file) => access(file, constants.X_OK).then(() => true, () => false),
  list: (dir) => readdir(dir).catch(() => []),
  devDir: '/dev',
  ascendRoot: '/usr/local/Ascend',
};

export interface CannProbe {
  /** An NPU is here: /dev/davinci<N> device nodes. */
  npu: boolean;
  /** The CANN runtime is here: libascendcl.so was found. */
  cann: boolean;
  /** vLLM-MindSpore can be launched: `vllm-mindspore` is on PATH. */
  server: boolean;
  /** Everything needed to serve here. */
  available: boolean;
  toolkitHome?: string;
  libascendcl?: string;
  npuSmi?: string;
  vllmMindSpore?: string;
  devices: string[];
  /** One line per thing looked for: what was found where, or what is missing and where it was looked for. */
  found: string[];
  missing: string[];
}

const LIB_DIRS = ['lib64', 'runtime/lib64', 'aarch64-linux/lib64', 'x86_64-linux/lib64'];

async function onPath(name: string, inputs: CannProbeInputs, extra: string[] = []): Promise<{ file?: string; dirs: string[] }> {
  const dirs = [...(inputs.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...extra];
  for (const dir of dirs) {
    const file = path.join(dir, name);
    if (await inputs.executable(file)) return { file, dirs };
  }
  return { dirs };
}

/** Probe for CANN, the NPU driver, device nodes and vLLM-MindSpore. */
export async function probeCann(overrides: Partial<CannProbeInputs> = {}): Promise<CannProbe> {
  const inputs: CannProbeInputs = { ...defaultProbeInputs, ...overrides };
  const found: string[] = [];
  const missing: string[] = [];
  const homes: string[] = [];
  let toolkitHome: string | undefined;
  for (const name of ['ASCEND_HOME_PATH', 'ASCEND_TOOLKIT_HOME']) {
    const value = inputs.env[name];
    if (!value) {
      missing.push(`${name} is not set`);
    } else if (await inputs.exists(value)) {
      found.push(`${name}=${value}`);
      homes.push(value);
      toolkitHome ??= value;
    } else {
      missing.push(`${name}=${value} does not exist`);
    }
  }
  const defaultHome = path.join(inputs.ascendRoot, 'ascend-toolkit', 'latest');
  if (!homes.includes(defaultHome)) homes.push(defaultHome);

  let libascendcl: string | undefined;
  const libCandidates = homes.flatMap((home) => LIB_DIRS.map((dir) => path.join(home, dir, 'libascendcl.so')));
  for (const file of libCandidates) {
    if (await inputs.exists(file)) {
      libascendcl = file;
      break;
    }
  }
  if (libascendcl) found.push(`libascendcl.so at ${libascendcl}`);
  else missing.push(`libascendcl.so (the CANN runtime) not found in ${homes.map((h) => `${h}/{${LIB_DIRS.join(',')}}`).join(', ')}`);
  toolkitHome ??= libascendcl ? homes.find((h) => libascendcl!.startsWith(h)) : undefined;

  const smi = await onPath('npu-smi', inputs, ['/usr/local/sbin', path.join(inputs.ascendRoot, 'driver', 'tools')]);
  if (smi.file) found.push(`npu-smi at ${smi.file}`);
  else missing.push('npu-smi (the Ascend driver tool) not on PATH or in /usr/local/sbin');

  const devices = (await inputs.list(inputs.devDir)).filter((n) => /^davinci\d+$/.test(n)).sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)));
  if (devices.length) found.push(`NPU device nodes ${devices.map((d) => path.join(inputs.devDir, d)).join(', ')}`);
  else missing.push(`no NPU device nodes ${path.join(inputs.devDir, 'davinci<N>')}`);

  const vllm = await onPath('vllm-mindspore', inputs);
  if (vllm.file) found.push(`vllm-mindspore at ${vllm.file}`);
  else missing.push('vllm-mindspore (pip install vllm-mindspore) not on PATH');

  const npu = devices.length > 0;
  const cann = libascendcl !== undefined;
  const server = vllm.file !== undefined;
  return {
    npu, cann, server, available: npu && cann && server,
    toolkitHome, libascendcl, npuSmi: smi.file, vllmMindSpore: vllm.file,
    devices: devices.map((d) => path.join(inputs.devDir, d)), found, missing,
  };
}

/** The probe as one sentence: what is missing, then what was found. */
export function describeProbe(p: CannProbe): string {
  const parts = [`looked for CANN, an Ascend NPU and vLLM-MindSpore: missing ${p.missing.length ? p.missing.join('; ') : 'nothing'}`];
  if (p.found.length) parts.push(`found ${p.found.join('; ')}`);
  return parts.join('; ');
}
