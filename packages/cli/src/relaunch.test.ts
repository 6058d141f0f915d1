/** When a command line is handed to a child (cli.test.ts runs the real thing: long argv, exit codes, signals). */
import { afterEach, describe, expect, it } from 'vitest';
import { ARGV_FD_ENV, argvBytes, handedArgv, MAX_ARGV_BYTES, needsRelaunch } from './relaunch.js';

afterEach(() => {
  delete process.env[ARGV_FD_ENV];
});

describe('argvBytes', () => {
  it('counts every argument NUL-terminated, in UTF-8, node options included', () => {
    expect(argvBytes(['node', 'bin.js'], [])).toBe(5 + 7);
    expect(argvBytes(['node', 'é'], ['--import', 'tsx'])).toBe(5 + 3 + 9 + 4);
  });
});

describe('needsRelaunch', () => {
  const node = ['/usr/bin/node', '/x/bin.js'];
  const withArg = (bytes: number) => [...node, 'x'.repeat(bytes)];
  it(`is true past ${MAX_ARGV_BYTES} bytes`, () => {
    if (process.platform === 'win32') return;
    const base = argvBytes(node, []);
    expect(needsRelaunch(withArg(MAX_ARGV_BYTES - base - 1), [])).toBe(false);
    expect(needsRelaunch(withArg(MAX_ARGV_BYTES - base), [])).toBe(true);
  });
  it('is never true in the re-launched child, whose arguments came over the pipe', () => {
    process.env[ARGV_FD_ENV] = '3';
    expect(needsRelaunch(withArg(100_000), [])).toBe(false);
  });
});

describe('handedArgv', () => {
  it('is undefined outside a re-launched child', () => {
    expect(handedArgv()).toBeUndefined();
  });
  it('refuses a descriptor other than the one qllm sets, and clears the variable', () => {
    process.env[ARGV_FD_ENV] = '0';
    expect(() => handedArgv()).toThrow(`${ARGV_FD_ENV} must be 3 (set by qllm for its own child), got '0'`);
    expect(process.env[ARGV_FD_ENV]).toBeUndefined();
  });
});
