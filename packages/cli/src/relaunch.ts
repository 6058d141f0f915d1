/**
 * Long command lines: onnxruntime's native code reads /proc/self/cmdline while it creates an InferenceSession and
 * recurses about two stack frames per byte of it, so ~30 KB of arguments (a long --prompt, 8192 --prompt-token-ids)
 * overflow the 8 MB main-thread stack and the process dies of SIGSEGV. The environment is not read that way, and
 * process.title does not shrink the argv area. So when the arguments are long, `qllm` runs itself again as a child
 * with a short command line and hands the real arguments over a pipe (fd 3, as JSON); the child inherits
 * stdin/stdout/stderr, and its exit code or terminating signal becomes the parent's.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { Writable } from 'node:stream';

/** Command lines longer than this (bytes, as /proc/self/cmdline holds them) run in a child. */
export const MAX_ARGV_BYTES = 4096;

/** Set in the child's environment: the file descriptor to read the JSON array of arguments from. */
export const ARGV_FD_ENV = 'QLLM_ARGV_FD';

const HANDED_FD = 3;

/** Signals the parent passes on to the child (a Ctrl-C reaches both through the process group anyway). */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Bytes of the command line: every argument NUL-terminated, node's own options included. */
export function argvBytes(argv: readonly string[] = process.argv, execArgv: readonly string[] = process.execArgv): number {
  let bytes = 0;
  for (const arg of [...execArgv, ...argv]) bytes += Buffer.byteLength(arg) + 1;
  return bytes;
}

/** True when this process should hand its arguments to a child (never in a child, nor on Windows, which has no /proc). */
export function needsRelaunch(argv: readonly string[] = process.argv, execArgv: readonly string[] = process.execArgv): boolean {
  return process.platform !== 'win32' && process.env[ARGV_FD_ENV] === undefined && argvBytes(argv, execArgv) > MAX_ARGV_BYTES;
}

/**
 * In a child started by `relaunch`: the full argv (`[node, script, ...arguments]`) with the arguments read from the
 * pipe, and the environment variable removed so that nothing this process starts reads the pipe again.
 * Elsewhere: undefined.
 */
export function handedArgv(): string[] | undefined {
  const fdText = process.env[ARGV_FD_ENV];
  if (fdText === undefined) return undefined;
  delete process.env[ARGV_FD_ENV];
  if (fdText !== String(HANDED_FD)) throw new Error(`${ARGV_FD_ENV} must be ${HANDED_FD} (set by qllm for its own child), got '${fdText}'`);
  let args: unknown;
  try {
    args = JSON.parse(fs.readFileSync(HANDED_FD, 'utf8'));
    fs.closeSync(HANDED_FD);
  } catch (e) {
    throw new Error(`could not read the arguments handed over on fd ${HANDED_FD} (${(e as Error).message})`);
  }
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
    throw new Error(`the arguments handed over on fd ${HANDED_FD} are not a JSON array of strings`);
  }
  return [process.argv[0]!, process.argv[1]!, ...args];
}

/**
 * Run this script again (same node, same node options) with `args` handed over on fd 3, and wait for it. The
 * child's exit code becomes this process's exit code; a signal that ends the child ends this process too (re-raised
 * on itself; if that does not kill it, the exit code is 128 + the signal number, as a shell reports it).
 * SIGINT, SIGTERM and SIGHUP sent to this process are passed on to the child.
 */
export function relaunch(args: readonly string[] = process.argv.slice(2), script = process.argv[1]!): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, script], {
      stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
      env: { ...process.env, [ARGV_FD_ENV]: String(HANDED_FD) },
    });
    const forward = (signal: NodeJS.Signals) => {
      child.kill(signal);
    };
    for (const signal of FORWARDED) process.on(signal, forward);
    const done = () => {
      for (const signal of FORWARDED) process.off(signal, forward);
      resolve();
    };
    const pipe = child.stdio[HANDED_FD] as Writable;
    pipe.on('error', () => undefined); // the child may exit before it reads (EPIPE); its exit reports what happened
    pipe.end(JSON.stringify(args));
    child.on('error', (err) => {
      process.stderr.write(`qllm: could not start a child process for the long command line: ${err.message}\n`);
      process.exitCode = 1;
      done();
    });
    child.on('exit', (code, signal) => {
      if (signal) {
        process.exitCode = 128 + (os.constants.signals[signal] ?? 0);
        for (const s of FORWARDED) process.off(s, forward);
        process.kill(process.pid, signal);
      } else {
        process.exitCode = code ?? 1;
      }
      done();
    });
  });
}
