/**
 * `mkdir -p` that always ends: Node's `mkdir(…, { recursive: true })` spins forever (CPU
 * bound, deaf to SIGTERM) where `mkdir` answers ENOENT although the parent exists — under
 * `/proc`, for one. This walks up one component at a time, creates each missing level once,
 * and turns any failure into one line naming the directory.
 *
 * @module
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SdnetError } from './errors.ts';

/** Deepest path we create (components); a longer one is a mistake, not a data dir. */
const MAX_DEPTH = 64;

/**
 * Create `path` and its missing parents with `mode`.
 *
 * @throws {SdnetError} `ERR_DIR_CREATE` with the reason (`ENOENT`, `EACCES`, `ENOTDIR`, …)
 */
export async function makeDir(path: string, mode = 0o700): Promise<void> {
  const target = resolve(path);
  const missing: string[] = [];
  for (let dir = target; missing.length <= MAX_DEPTH; dir = dirname(dir)) {
    try {
      const info = await stat(dir);
      if (!info.isDirectory()) throw new SdnetError('ERR_DIR_CREATE', `Cannot create ${target}: ${dir} is not a directory`);
      break;
    } catch (err) {
      if (err instanceof SdnetError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') throw new SdnetError('ERR_DIR_CREATE', `Cannot create ${target}: a part of the path is a file, not a directory`, { cause: err });
      if (code !== 'ENOENT') throw new SdnetError('ERR_DIR_CREATE', `Cannot create ${target}: ${code ?? String(err)} on ${dir}`, { cause: err });
      if (dirname(dir) === dir) throw new SdnetError('ERR_DIR_CREATE', `Cannot create ${target}: no root`);
      missing.push(dir);
    }
  }
  if (missing.length > MAX_DEPTH) throw new SdnetError('ERR_DIR_CREATE', `Cannot create ${target}: more than ${MAX_DEPTH} levels missing`);
  for (const dir of missing.reverse()) {
    try {
      await mkdir(dir, { mode });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      const why = code === 'ENOENT' ? 'this file system does not allow creating it' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENOSPC' ? 'no space left on the device' : code === 'EROFS' ? 'read-only file system' : (code ?? String(err));
      throw new SdnetError('ERR_DIR_CREATE', `Cannot create ${dir}: ${why}`, { cause: err });
    }
  }
}
