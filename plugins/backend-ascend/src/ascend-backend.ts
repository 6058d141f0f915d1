/**
 * The 'ascend' backend. qllm does not run graphs on an NPU itself: on Ascend, models are served by vLLM-MindSpore,
 * and this backend drives its OpenAI-compatible server over HTTP behind the same `LLM` API (BackendV1's
 * createRemoteEngine). With `server: URL` it attaches to a running server (anywhere: this machine needs no NPU);
 * without one, where an NPU, CANN and vLLM-MindSpore are present, it starts `vllm-mindspore serve` for the folder and
 * stops it on close; elsewhere `new LLM({ model, backend: 'ascend' })` fails before reading any weights, saying what
 * was looked for and the command that serves the folder on an Ascend machine.
 */
import { createServer } from 'node:net';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import {
  ConfigError,
  type BackendAvailability, type BackendProbeOptions, type BackendV1, type RemoteEngineOptionsV1, type RemoteEngineV1,
} from '@qllm/core';
import { launchServer } from './launch.js';
import { connectOpenAIServer } from './openai-engine.js';
import { describeProbe, probeCann, type CannProbe, type CannProbeInputs } from './probe.js';
import { inspectFolder, shellLine, unservableReason, vllmMindSporeCommand } from './serve-command.js';

/** The backend's own settings (`createAscendBackend(settings)`). */
export interface AscendBackendSettings {
  /** The probe's environment and file system (tests simulate a machine with CANN). */
  probe?: Partial<CannProbeInputs>;
  /** How the server is started (tests). */
  spawn?: (command: string, args: string[], options: SpawnOptions) => ChildProcess;
}

/** What `new LLM({ backend: 'ascend', backendOptions })` may say. */
export interface AscendBackendOptions {
  /** The server's API key (vLLM's --api-key): sent by the client, and given to a server this backend starts. */
  apiKey?: string;
  /** The model name to request / to serve under (vLLM's --served-model-name). */
  servedModelName?: string;
  /** For a started server: the host it listens on (default 127.0.0.1) and port (default: a free one). */
  host?: string;
  port?: number;
  /** For a started server: more environment variables (e.g. ASCEND_RT_VISIBLE_DEVICES) and `vllm serve` flags. */
  env?: Record<string, string>;
  extraArgs?: string[];
  /** For a started server: the program (default 'vllm-mindspore') and how long it may take to be ready (default 15 min). */
  command?: string;
  startupTimeoutMs?: number;
  /** For a started server: each line it prints. */
  onOutput?: (line: string) => void;
}

const OPTION_KEYS = new Set(['apiKey', 'servedModelName', 'host', 'port', 'env', 'extraArgs', 'command', 'startupTimeoutMs', 'onOutput']);

function parseOptions(raw: Readonly<Record<string, unknown>> = {}): AscendBackendOptions {
  const unknown = Object.keys(raw).filter((k) => !OPTION_KEYS.has(k));
  if (unknown.length) throw new ConfigError(`backendOptions: unknown option ${unknown.map((k) => `'${k}'`).join(', ')} for backend 'ascend' (known: ${[...OPTION_KEYS].join(', ')})`);
  const o = raw as AscendBackendOptions;
  const str = (k: 'apiKey' | 'servedModelName' | 'host' | 'command') => {
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === '')) throw new ConfigError(`backendOptions.${k} must be a non-empty string`);
  };
  for (const k of ['apiKey', 'servedModelName', 'host', 'command'] as const) str(k);
  if (o.port !== undefined && !(Number.isSafeInteger(o.port) && o.port >= 1 && o.port <= 65535)) throw new ConfigError(`backendOptions.port must be an integer in [1, 65535], got ${String(o.port)}`);
  if (o.startupTimeoutMs !== undefined && !(Number.isFinite(o.startupTimeoutMs) && o.startupTimeoutMs > 0)) throw new ConfigError('backendOptions.startupTimeoutMs must be a positive number');
  if (o.extraArgs !== undefined && !(Array.isArray(o.extraArgs) && o.extraArgs.every((a) => typeof a === 'string'))) throw new ConfigError('backendOptions.extraArgs must be an array of strings');
  if (o.env !== undefined && !(typeof o.env === 'object' && o.env !== null && Object.values(o.env).every((v) => typeof v === 'string'))) throw new ConfigError('backendOptions.env must map names to strings');
  if (o.onOutput !== undefined && typeof o.onOutput !== 'function') throw new ConfigError('backendOptions.onOutput must be a function');
  return o;
}

/** A free TCP port on `host`. */
async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** How to serve `dir` on an Ascend machine, as the message of an unavailable probe says it. */
export async function howToServe(dir: string): Promise<string> {
  const layout = await inspectFolder(dir).catch(() => ({ kind: 'float' as const }));
  const problem = unservableReason(layout);
  if (problem) return `vLLM-MindSpore cannot serve ${dir}: ${problem}`;
  const command = shellLine(vllmMindSporeCommand(dir, layout, { port: 8000 }));
  return `To serve ${dir} on an Ascend machine, run \`${command}\` there, then here: ` +
    `new LLM({ model: ${JSON.stringify(dir)}, backend: 'ascend', server: 'http://<that host>:8000' })`;
}

/** Create the Ascend backend. */
export function createAscendBackend(settings: AscendBackendSettings = {}): BackendV1 {
  let last: CannProbe | undefined;
  const probe = async () => (last = await probeCann(settings.probe));
  return {
    specificationVersion: 'v1',
    name: 'ascend',
    async isAvailable(options: BackendProbeOptions = {}): Promise<BackendAvailability> {
      const p = await probe();
      if (p.available) return { available: true };
      const hint = options.model ? `. ${await howToServe(options.model)}` : '';
      return { available: false, reason: `${describeProbe(p)}${hint}` };
    },
    // Below the CPU backend's 1 unless an NPU was found (the selection loop probes before it scores).
    score: () => (last?.npu ? 10 : 0),
    supportsOp: () => false,
    async createSession() {
      throw new ConfigError("backend 'ascend' runs models in vLLM-MindSpore's server, not as a graph here: use new LLM({ model, backend: 'ascend' })");
    },
    async createRemoteEngine(o: RemoteEngineOptionsV1): Promise<RemoteEngineV1> {
      const opts = parseOptions(o.backendOptions);
      if (o.server) return connectOpenAIServer({ url: o.server, apiKey: opts.apiKey, servedModelName: opts.servedModelName });
      const layout = await inspectFolder(o.model);
      const host = opts.host ?? '127.0.0.1';
      const port = opts.port ?? (await freePort(host));
      const command = vllmMindSporeCommand(o.model, layout, {
        host, port, servedModelName: opts.servedModelName, maxModelLen: o.maxModelLen, maxNumSeqs: o.maxNumSeqs,
        seed: o.seed, maxLogprobs: o.maxLogprobs, command: opts.command,
        extraArgs: [...(opts.apiKey ? ['--api-key', opts.apiKey] : []), ...(opts.extraArgs ?? [])],
      });
      command.env = { ...command.env, ...opts.env };
      o.onProgress?.(`starting ${shellLine({ ...command, args: command.args.map((a) => (a === opts.apiKey ? '***' : a)) })}`);
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      const server = await launchServer({ command, url, startupTimeoutMs: opts.startupTimeoutMs, onOutput: opts.onOutput, spawn: settings.spawn });
      try {
        return await connectOpenAIServer({ url, apiKey: opts.apiKey, servedModelName: opts.servedModelName, onClose: () => server.stop() });
      } catch (e) {
        await server.stop();
        throw e;
      }
    },
    async describe() {
      const p = await probe();
      return { ascend: p.available ? 'available' : 'unavailable', 'ascend found': p.found.join('; ') || 'nothing', 'ascend missing': p.missing.join('; ') || 'nothing' };
    },
  };
}

/** The default instance. */
export const ascend = createAscendBackend();
