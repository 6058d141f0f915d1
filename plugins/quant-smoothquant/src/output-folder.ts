/**
 * Writing a model folder to `output` safely when several runs (or a killed one) may target it:
 *   - an exclusive lock, `<output>.lock`, created with O_EXCL and holding { pid, hostname, startedAt, id }: a
 *     second run fails at once naming the lock file and its holder; a lock whose pid is dead on this host is
 *     stale and taken over;
 *   - work happens in `<output>.partial-<pid>-h<host>-<time>`; under the lock, partial folders (and `.old-` folders
 *     of an interrupted replace) whose owner pid is dead on this host are cleaned up;
 *   - publishing never clobbers: without overwrite, an output that appeared meanwhile is an error and nothing is
 *     replaced; with overwrite, the old folder is renamed aside, the new one renamed in, then the old one removed.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@qllm/core';

interface LockHolder {
  pid: number;
  hostname: string;
  startedAt: string;
  id: string;
}

export interface OutputLock {
  /** The lock file, `<output>.lock`. */
  readonly file: string;
  /** Remove the lock file (only if it is still this lock). */
  release(): Promise<void>;
}

const HOSTNAME = os.hostname();
/** A short tag of this host for folder names (hostnames may hold '-' and '.'). */
const HOST_TAG = createHash('sha256').update(HOSTNAME).digest('hex').slice(0, 8);
const ATTEMPTS = 40;
const RETRY_MS = 25;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const errorCode = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** Whether a process with this pid exists on this host (EPERM: it exists but belongs to another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errorCode(e) === 'EPERM';
  }
}

/** Create `file` with `content` only if it does not exist yet (O_CREAT | O_EXCL); false if it exists. */
async function createExclusive(file: string, content: string): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'wx');
  } catch (e) {
    if (errorCode(e) === 'EEXIST') return false;
    throw new ConfigError(`${file}: cannot create the lock file — ${(e as Error).message}`);
  }
  try {
    await handle.writeFile(content);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.rm(file, { force: true });
    throw new ConfigError(`${file}: cannot write the lock file — ${(e as Error).message}`);
  }
  await handle.close();
  return true;
}

type LockState = { kind: 'gone' } | { kind: 'unreadable'; text: string } | { kind: 'held'; text: string; holder: LockHolder };

async function readLock(file: string): Promise<LockState> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return { kind: 'gone' };
    throw new ConfigError(`${file}: cannot read the lock file — ${(e as Error).message}`);
  }
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (Number.isInteger(h.pid) && h.pid! > 0 && typeof h.hostname === 'string' && typeof h.startedAt === 'string' && typeof h.id === 'string') {
      return { kind: 'held', text, holder: h as LockHolder };
    }
  } catch {
    // Empty while its creator writes it, or not ours: unreadable.
  }
  return { kind: 'unreadable', text };
}

/**
 * Remove a stale lock, exactly once however many runs find it at the same time: only the run that creates the
 * guard file named after the stale lock's content may remove it, and only while the lock still holds that content.
 * Returns false when another run is taking it over right now.
 */
async function takeOverStaleLock(file: string, staleText: string): Promise<boolean> {
  const guard = `${file}.takeover-${createHash('sha256').update(staleText).digest('hex').slice(0, 16)}`;
  if (!(await createExclusive(guard, `${JSON.stringify({ pid: process.pid, hostname: HOSTNAME })}\n`))) return false;
  try {
    const now = await fs.readFile(file, 'utf8').catch(() => null);
    if (now === staleText) await fs.rm(file, { force: true });
    return true;
  } finally {
    await fs.rm(guard, { force: true });
  }
}

/**
 * Take the exclusive lock on `output` (`<output>.lock`, its parent folder created if needed). Fails at once with
 * a ConfigError naming the lock file and the pid holding it when another live run holds it.
 */
export async function acquireOutputLock(output: string): Promise<OutputLock> {
  const file = `${output}.lock`;
  const me: LockHolder = { pid: process.pid, hostname: HOSTNAME, startedAt: new Date().toISOString(), id: randomUUID() };
  await fs.mkdir(path.dirname(output), { recursive: true });
  for (let attempt = 1; ; attempt++) {
    if (await createExclusive(file, `${JSON.stringify(me)}\n`)) {
      return {
        file,
        release: async () => {
          const state = await readLock(file);
          if (state.kind === 'held' && state.holder.id === me.id) await fs.rm(file, { force: true });
        },
      };
    }
    const state = await readLock(file);
    const last = attempt >= ATTEMPTS;
    if (state.kind === 'held') {
      const { pid, hostname, startedAt } = state.holder;
      if (hostname !== HOSTNAME || isProcessAlive(pid)) {
        throw new ConfigError(
          `${output} is being written by another quantize run (pid ${pid} on ${hostname}, started ${startedAt}), which holds the lock file ${file}; `
          + `wait for it to finish, or delete ${file} if that process is not a quantize run writing ${output}`,
        );
      }
      // The pid is dead on this host: a killed run's lock. Take it over (then try to create ours again).
      if ((await takeOverStaleLock(file, state.text)) || !last) continue;
      throw new ConfigError(`${output}: the stale lock file ${file} (pid ${pid} is gone) could not be taken over; delete ${file} and ${file}.takeover-* and run again`);
    }
    if (last) {
      throw new ConfigError(`${output} is locked: the lock file ${file} exists but does not say which process holds it; delete it if no quantize run is writing ${output}`);
    }
    await sleep(RETRY_MS); // gone (released meanwhile) or still being written by its creator
  }
}

/** A fresh temporary folder name next to `output`, recording this process's pid and host. */
export function partialFolderName(output: string): string {
  return `${output}.partial-${process.pid}-h${HOST_TAG}-${Date.now().toString(36)}`;
}

/** The owner of a `<output>.partial-…` / `<output>.old-…` folder from its name; undefined if not one of ours. */
function ownerOf(suffix: string): { pid: number; thisHost: boolean } | undefined {
  const m = /^(\d+)-(?:h([0-9a-f]{8})-)?[0-9a-z]+$/.exec(suffix);
  if (!m) return undefined;
  return { pid: Number(m[1]), thisHost: m[2] === undefined || m[2] === HOST_TAG }; // names without a host tag predate it: this host
}

/**
 * Under the output lock: remove the partial folders of `output` left by killed runs (owner pid dead on this host),
 * and deal with `.old-` folders of a replace that was killed midway: put one back when `output` is missing
 * (the run died between its two renames), remove it otherwise. Folders of live processes are left alone.
 */
export async function cleanStaleFolders(output: string, log: (message: string) => void = () => undefined): Promise<void> {
  const dir = path.dirname(output);
  const base = path.basename(output);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const kind of ['partial', 'old'] as const) {
    const prefix = `${base}.${kind}-`;
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const owner = ownerOf(name.slice(prefix.length));
      if (!owner?.thisHost || isProcessAlive(owner.pid)) continue;
      const folder = path.join(dir, name);
      if (kind === 'old' && !(await exists(output))) {
        await fs.rename(folder, output);
        log(`restored ${output} from ${folder}, left by a replace that was interrupted (pid ${owner.pid} is gone)`);
      } else {
        await fs.rm(folder, { recursive: true, force: true });
        log(`removed ${folder}, left by a run that was interrupted (pid ${owner.pid} is gone)`);
      }
    }
  }
}

/**
 * Move the finished temporary folder to `output` without clobbering anything: without overwrite, `output` must
 * still not exist (else a ConfigError, and nothing is replaced); with it, an existing `output` is renamed aside,
 * the new folder renamed in, and the old one removed (put back if the second rename fails).
 */
export async function publishFolder(tmp: string, output: string, overwrite: boolean): Promise<void> {
  if (!overwrite) {
    // Claim the name atomically (mkdir fails if anything is there now); renaming a folder onto that empty folder
    // then succeeds only while it is still empty.
    try {
      await fs.mkdir(output);
    } catch (e) {
      if (errorCode(e) === 'EEXIST') {
        throw new ConfigError(`${output} appeared while quantizing (made by something else): nothing was replaced; pass overwrite / --overwrite to replace it`);
      }
      throw e;
    }
    try {
      await renameOntoEmptyFolder(tmp, output);
    } catch (e) {
      if (errorCode(e) === 'ENOTEMPTY' || errorCode(e) === 'EEXIST') {
        throw new ConfigError(`${output} was written to by something else while quantizing: nothing was replaced; pass overwrite / --overwrite to replace it`);
      }
      await fs.rmdir(output).catch(() => undefined);
      throw e;
    }
    return;
  }
  const old = `${output}.old-${process.pid}-h${HOST_TAG}-${Date.now().toString(36)}`;
  try {
    await fs.rename(output, old);
  } catch (e) {
    if (errorCode(e) !== 'ENOENT') throw e;
    await fs.rename(tmp, output); // nothing to replace
    return;
  }
  try {
    await fs.rename(tmp, output);
  } catch (e) {
    await fs.rename(old, output).catch(() => undefined);
    throw e;
  }
  await fs.rm(old, { recursive: true, force: true });
}

/** POSIX rename replaces an empty folder; where it does not (Windows), remove the empty folder first. */
async function renameOntoEmptyFolder(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
  } catch (e) {
    if (errorCode(e) !== 'EPERM' && errorCode(e) !== 'EACCES') throw e;
    await fs.rmdir(to);
    await fs.rename(from, to);
  }
}

export async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}
