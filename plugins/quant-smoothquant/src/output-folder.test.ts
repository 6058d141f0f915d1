import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@qllm/core';
import { acquireOutputLock, cleanStaleFolders, isProcessAlive, partialFolderName, publishFolder } from './output-folder.js';

let root: string;
let sleeper: ChildProcess;
let livePid: number;
let deadPid: number;

/** The pid of a process that has exited (it may be reused later, but not within a test run in practice). */
async function deadProcessPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'qllm-output-folder-'));
  sleeper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  livePid = sleeper.pid!;
  deadPid = await deadProcessPid();
  expect(isProcessAlive(livePid)).toBe(true);
  expect(isProcessAlive(deadPid)).toBe(false);
});
afterAll(async () => {
  sleeper.kill();
  await fs.rm(root, { recursive: true, force: true });
});

const lockOf = (pid: number, hostname = os.hostname()) => `${JSON.stringify({ pid, hostname, startedAt: '2026-01-02T03:04:05.000Z', id: `id-${pid}` })}\n`;

describe('acquireOutputLock', () => {
  it('is exclusive: a second lock on the same output fails at once, naming the lock file and the pid holding it', async () => {
    const output = path.join(root, 'twice');
    const lock = await acquireOutputLock(output);
    expect(lock.file).toBe(`${output}.lock`);
    expect(JSON.parse(await fs.readFile(lock.file, 'utf8'))).toMatchObject({ pid: process.pid, hostname: os.hostname() });
    const err = await acquireOutputLock(output).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`${output} is being written by another quantize run (pid ${process.pid} on ${os.hostname()}`);
    expect((err as Error).message).toContain(`lock file ${output}.lock`);
    await lock.release();
    await expect(fs.access(lock.file)).rejects.toThrow();
    const again = await acquireOutputLock(output);
    await again.release();
  });

  it('names the pid of another live process holding it, and leaves its lock alone', async () => {
    const output = path.join(root, 'live');
    await fs.writeFile(`${output}.lock`, lockOf(livePid));
    await expect(acquireOutputLock(output)).rejects.toThrow(`(pid ${livePid} on ${os.hostname()}, started 2026-01-02T03:04:05.000Z), which holds the lock file ${output}.lock`);
    expect(await fs.readFile(`${output}.lock`, 'utf8')).toBe(lockOf(livePid));
  });

  it('takes over a stale lock whose pid is dead on this host', async () => {
    const output = path.join(root, 'stale');
    await fs.writeFile(`${output}.lock`, lockOf(deadPid));
    const lock = await acquireOutputLock(output);
    expect(JSON.parse(await fs.readFile(lock.file, 'utf8')).pid).toBe(process.pid);
    await lock.release();
    expect((await fs.readdir(root)).filter((f) => f.startsWith('stale'))).toEqual([]);
  });

  it('gives a stale lock to exactly one of several runs racing for it', async () => {
    const output = path.join(root, 'race');
    await fs.writeFile(`${output}.lock`, lockOf(deadPid));
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireOutputLock(output)));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/being written by another quantize run/);
    await won[0]!.value.release();
    expect((await fs.readdir(root)).filter((f) => f.startsWith('race'))).toEqual([]); // no takeover guard left either
  });

  it("never takes over another host's lock, whatever its pid", async () => {
    const output = path.join(root, 'remote');
    await fs.writeFile(`${output}.lock`, lockOf(deadPid, 'some-other-host'));
    await expect(acquireOutputLock(output)).rejects.toThrow(`(pid ${deadPid} on some-other-host,`);
  });

  it('reports a lock file it cannot read instead of removing it', async () => {
    const output = path.join(root, 'unreadable');
    await fs.writeFile(`${output}.lock`, 'not json');
    await expect(acquireOutputLock(output)).rejects.toThrow(
      new ConfigError(`${output} is locked: the lock file ${output}.lock exists but does not say which process holds it; delete it if no quantize run is writing ${output}`),
    );
    expect(await fs.readFile(`${output}.lock`, 'utf8')).toBe('not json');
  });

  it('creates the parent folder, and release leaves a lock that is no longer its own', async () => {
    const output = path.join(root, 'new', 'parent', 'out');
    const lock = await acquireOutputLock(output);
    await fs.writeFile(lock.file, lockOf(livePid));
    await lock.release();
    expect(await fs.readFile(lock.file, 'utf8')).toBe(lockOf(livePid));
  });
});

describe('cleanStaleFolders', () => {
  it("removes partial folders of dead runs on this host and leaves live runs', other hosts' and unknown ones", async () => {
    const dir = path.join(root, 'partials');
    const output = path.join(dir, 'out');
    const ours = path.basename(partialFolderName(output)); // out.partial-<pid>-h<host>-<time>
    const named = (pid: number) => ours.replace(`.partial-${process.pid}-`, `.partial-${pid}-`);
    const stale = [named(deadPid), `out.partial-${deadPid}-lx0abc`]; // the second: the name before the host tag
    const kept = [named(livePid), `out.partial-${deadPid}-hffffffff-x1`, 'out.partial-by-hand', `other.partial-${deadPid}-lx0abc`];
    if (ours.includes('-hffffffff-')) kept.splice(1, 1);
    for (const name of [...stale, ...kept]) {
      await fs.mkdir(path.join(dir, name), { recursive: true });
      await fs.writeFile(path.join(dir, name, 'model-00001-of-00002.safetensors'), 'x');
    }
    const logged: string[] = [];
    await cleanStaleFolders(output, (m) => logged.push(m));
    expect((await fs.readdir(dir)).sort()).toEqual([...kept].sort());
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatch(new RegExp(`^removed .*out\\.partial-${deadPid}-.*, left by a run that was interrupted \\(pid ${deadPid} is gone\\)$`));
  });

  it('puts back the old folder of a replace killed between its renames, and removes one killed after them', async () => {
    const dir = path.join(root, 'olds');
    const output = path.join(dir, 'out');
    await fs.mkdir(path.join(dir, `out.old-${deadPid}-lx0abc`), { recursive: true });
    await fs.writeFile(path.join(dir, `out.old-${deadPid}-lx0abc`, 'config.json'), '{"old": true}');
    await cleanStaleFolders(output);
    expect(await fs.readdir(dir)).toEqual(['out']);
    expect(await fs.readFile(path.join(output, 'config.json'), 'utf8')).toBe('{"old": true}');
    await fs.mkdir(path.join(dir, `out.old-${deadPid}-lx0abd`));
    await cleanStaleFolders(output);
    expect(await fs.readdir(dir)).toEqual(['out']);
  });
});

describe('publishFolder', () => {
  async function tmpWith(name: string, content: string): Promise<string> {
    const tmp = path.join(root, 'publish', name);
    await fs.mkdir(tmp, { recursive: true });
    await fs.writeFile(path.join(tmp, 'config.json'), content);
    return tmp;
  }

  it('moves the folder into place when the output does not exist', async () => {
    const output = path.join(root, 'publish', 'fresh');
    await publishFolder(await tmpWith('t1', 'new'), output, false);
    expect(await fs.readFile(path.join(output, 'config.json'), 'utf8')).toBe('new');
  });

  it('without overwrite, never replaces an output that appeared meanwhile', async () => {
    const output = path.join(root, 'publish', 'appeared');
    await fs.mkdir(output);
    await fs.writeFile(path.join(output, 'mine.txt'), 'keep me');
    const tmp = await tmpWith('t2', 'new');
    await expect(publishFolder(tmp, output, false)).rejects.toThrow(
      new ConfigError(`${output} appeared while quantizing (made by something else): nothing was replaced; pass overwrite / --overwrite to replace it`),
    );
    expect(await fs.readdir(output)).toEqual(['mine.txt']);
    // Even an empty folder, which a bare rename(2) would silently replace.
    const empty = path.join(root, 'publish', 'empty');
    await fs.mkdir(empty);
    await expect(publishFolder(tmp, empty, false)).rejects.toThrow(/appeared while quantizing/);
    expect(await fs.readFile(path.join(tmp, 'config.json'), 'utf8')).toBe('new');
  });

  it('with overwrite, replaces the output and leaves no old folder', async () => {
    const output = path.join(root, 'publish', 'replaced');
    await publishFolder(await tmpWith('t3', 'first'), output, true);
    await publishFolder(await tmpWith('t4', 'second'), output, true);
    expect(await fs.readFile(path.join(output, 'config.json'), 'utf8')).toBe('second');
    expect((await fs.readdir(path.join(root, 'publish'))).filter((f) => f.startsWith('replaced'))).toEqual(['replaced']);
  });
});
