/**
 * One running service per data dir: `sdnet.lock` holds the pid of the process that runs it.
 * A lock whose process is gone (killed, crashed) is stale and taken over.
 *
 * @module
 */
import { constants } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SdnetError } from '../util/errors.ts';

/** Another process runs the service of this data dir. */
export class ServiceLockedError extends SdnetError {
  readonly pid: number;
  readonly path: string;
  constructor(path: string, pid: number) {
    super('ERR_SERVICE_RUNNING', `Another sdnet service (pid ${pid}) is running for this data dir (${path})`);
    this.name = 'ServiceLockedError';
    this.pid = pid;
    this.path = path;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Locks this process holds (a pid match alone could be a stale lock of an earlier process). */
const heldHere = new Set<string>();

export class DataDirLock {
  readonly path: string;
  #held = true;

  private constructor(path: string) {
    this.path = path;
  }

  static pathIn(dataDir: string): string {
    return join(dataDir, 'sdnet.lock');
  }

  /** The pid holding the lock of `dataDir`, if a live process does. */
  static async holder(dataDir: string): Promise<number | undefined> {
    const pid = await readPid(DataDirLock.pathIn(dataDir));
    return pid !== undefined && alive(pid) ? pid : undefined;
  }

  /**
   * Take the lock of `dataDir`.
   *
   * @throws {ServiceLockedError} `ERR_SERVICE_RUNNING` while another live process holds it
   */
  static async acquire(dataDir: string): Promise<DataDirLock> {
    const path = DataDirLock.pathIn(dataDir);
    if (heldHere.has(path)) throw new ServiceLockedError(path, process.pid);
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
        try {
          await handle.writeFile(`${process.pid}\n`);
          await handle.sync();
        } finally {
          await handle.close();
        }
        heldHere.add(path);
        return new DataDirLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let pid = await readPid(path);
      if (pid === undefined) {
        // Maybe another process is between creating and writing it.
        await new Promise((r) => setTimeout(r, 50));
        pid = await readPid(path);
      }
      if (pid !== undefined && pid !== process.pid && alive(pid)) throw new ServiceLockedError(path, pid);
      // Stale (or half-written by a process that died): remove and try again.
      await unlink(path).catch(() => undefined);
    }
    throw new SdnetError('ERR_SERVICE_LOCK', `Cannot take the lock ${path}`);
  }

  /** Release the lock (if it is still ours). */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    heldHere.delete(this.path);
    if ((await readPid(this.path)) === process.pid) await unlink(this.path).catch(() => undefined);
  }
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    const pid = Number(text);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
