/**
 * Crash-safe file replacement: write a temporary file next to the target, fsync it, rename it
 * over the target, fsync the directory. After a crash at any point the target holds either
 * the old or the new contents, never a mix (POSIX rename is atomic; the fsyncs order the
 * data before the rename and make the rename itself durable).
 *
 * @module
 */
import { constants } from 'node:fs';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** The temporary-file prefix for `path` (leftovers of a crash are recognised by it). */
export function tempPrefix(path: string): string {
  return `${basename(path)}.tmp-`;
}

/** Replace `path` with `data` atomically (mode `mode` for a new file). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${tempPrefix(path)}${process.pid}-${randomBytes(4).toString('hex')}`);
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** fsync a directory so a rename or creation in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
  } catch {
    return; // Platforms that cannot open directories (Windows) have no directory fsync.
  }
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle.close();
  }
}

/** Remove temporary files a crash left behind for `path`. */
export async function removeStaleTemps(path: string): Promise<number> {
  const prefix = tempPrefix(path);
  let removed = 0;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return 0;
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    await unlink(join(dirname(path), n)).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}
