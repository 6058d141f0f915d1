/**
 * Start an OpenAI-compatible server as a child process (vLLM-MindSpore's `vllm-mindspore serve`), wait until its
 * /health answers 200, and stop it (the whole process group: vLLM runs worker processes) on `stop()` or when this
 * process exits. What the child printed last is kept for the error when it exits or hangs before it is ready.
 */
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { ConfigError } from '@qllm/core';
import { shellLine, type ServeCommand } from './serve-command.js';

export interface LaunchOptions {
  command: ServeCommand;
  /** The server's base URL once it listens (host and port as the command says). */
  url: string;
  /** How long the server may take to load the model and answer /health (default 15 minutes: NPU graph compilation). */
  startupTimeoutMs?: number;
  /** How often /health is polled (default 1 s). */
  pollMs?: number;
  /** Each line the server prints (default: dropped; the last ones are kept for errors). */
  onOutput?: (line: string) => void;
  /** Injected in tests. */
  spawn?: (command: string, args: string[], options: SpawnOptions) => ChildProcess;
}

export interface LaunchedServer {
  url: string;
  pid: number | undefined;
  /** Stop the server: SIGTERM to its process group, SIGKILL after `graceMs` (default 10 s). Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const KEEP_LINES = 40;

export async function launchServer(o: LaunchOptions): Promise<LaunchedServer> {
  const spawn = o.spawn ?? nodeSpawn;
  const line = shellLine(o.command);
  const child = spawn(o.command.command, o.command.args, {
    env: { ...process.env, ...o.command.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so stop() reaches vLLM's workers too
  });
  const tail: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split(/\r?\n/)) {
      if (!l) continue;
      tail.push(l);
      if (tail.length > KEEP_LINES) tail.shift();
      o.onOutput?.(l);
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.once('error', (e) => {
      spawnError = e;
      resolve();
    });
  });

  const kill = (signal: NodeJS.Signals) => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  };
  const onProcessExit = () => kill('SIGKILL');
  process.once('exit', onProcessExit);

  let stopped: Promise<void> | undefined;
  const stop = (graceMs = 10_000) => {
    stopped ??= (async () => {
      process.removeListener('exit', onProcessExit);
      if (exited || spawnError) return;
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    })();
    return stopped;
  };

  const deadline = Date.now() + (o.startupTimeoutMs ?? 15 * 60_000);
  const output = () => (tail.length ? `; its last output:\n${tail.join('\n')}` : '');
  for (;;) {
    if (spawnError) {
      await stop();
      const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
      throw new ConfigError(
        missing ? `cannot run '${o.command.command}': not found on PATH (pip install vllm-mindspore)` : `cannot run \`${line}\`: ${spawnError.message}`,
        { cause: spawnError },
      );
    }
    if (exited) {
      await stop();
      throw new ConfigError(`\`${line}\` exited (${exited.signal ?? `code ${exited.code}`}) before it was ready${output()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new ConfigError(`\`${line}\` did not answer ${o.url}/health within ${((o.startupTimeoutMs ?? 0) / 1000).toFixed(0)} s${output()}`);
    }
    const healthy = await fetch(`${o.url}/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false);
    if (healthy) return { url: o.url, pid: child.pid, stop };
    await Promise.race([exit, new Promise((r) => setTimeout(r, o.pollMs ?? 1000))]);
  }
}
