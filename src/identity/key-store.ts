/**
 * Secret-key files.
 *
 * Format: the 32-byte seed as 64 lower-case hex characters and an optional final newline —
 * the form iroh tools such as dumbpipe take in `IROH_SECRET`. Files are created with mode
 * 0600 and never overwritten unless asked; loading refuses a malformed file (it never
 * replaces an identity silently) and, on POSIX systems, a file that others can read.
 *
 * @module
 */
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { SecretKey } from './keys.ts';
import { MAX_KEY_FILE_BYTES } from './limits.ts';
import { SdnetError } from '../util/errors.ts';
import { makeDir } from '../util/make-dir.ts';
import { toHex } from '../util/bytes.ts';

/** A key file could not be read or written. `code` says why. */
export class KeyFileError extends SdnetError {
  readonly path: string;

  constructor(code: 'ERR_KEY_FILE_NOT_FOUND' | 'ERR_KEY_FILE_MALFORMED' | 'ERR_KEY_FILE_PERMISSIONS' | 'ERR_KEY_FILE_EXISTS', path: string, message: string) {
    super(code, message);
    this.name = 'KeyFileError';
    this.path = path;
  }
}

/** Where `sdnet` keeps its key unless told otherwise: `$SDNET_HOME/secret.key`, else `$XDG_CONFIG_HOME/sdnet/secret.key`, else `~/.config/sdnet/secret.key`. */
export function defaultKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SDNET_HOME) return join(env.SDNET_HOME, 'secret.key');
  const config = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(config, 'sdnet', 'secret.key');
}

/** The file contents for `key`. */
export function formatSecretKey(key: SecretKey): string {
  return `${toHex(key.toBytes())}\n`;
}

/**
 * Parse key-file contents.
 *
 * @throws {KeyFileError} `ERR_KEY_FILE_MALFORMED`
 */
export function parseSecretKeyFile(contents: string, path = '<memory>'): SecretKey {
  const body = contents.endsWith('\r\n') ? contents.slice(0, -2) : contents.endsWith('\n') ? contents.slice(0, -1) : contents;
  if (!/^[0-9a-f]{64}$/.test(body)) {
    throw new KeyFileError(
      'ERR_KEY_FILE_MALFORMED',
      path,
      `Cannot load key file "${path}": expected 64 lower-case hex characters (a 32-byte Ed25519 secret key)`,
    );
  }
  return SecretKey.fromString(body);
}

/**
 * Load a secret key file.
 *
 * @throws {KeyFileError} `ERR_KEY_FILE_NOT_FOUND`, `ERR_KEY_FILE_PERMISSIONS` (readable by
 *   group or others, like OpenSSH refuses), or `ERR_KEY_FILE_MALFORMED`
 */
export async function loadSecretKey(path: string): Promise<SecretKey> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new KeyFileError('ERR_KEY_FILE_NOT_FOUND', path, `Cannot load key file "${path}": no such file`);
    throw err;
  }
  if (!info.isFile()) throw new KeyFileError('ERR_KEY_FILE_MALFORMED', path, `Cannot load key file "${path}": not a regular file`);
  if (info.size > MAX_KEY_FILE_BYTES) throw new KeyFileError('ERR_KEY_FILE_MALFORMED', path, `Cannot load key file "${path}": file is too large (${info.size} bytes)`);
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw new KeyFileError(
      'ERR_KEY_FILE_PERMISSIONS',
      path,
      `Cannot load key file "${path}": permissions ${(info.mode & 0o777).toString(8)} let others read it; run chmod 600 "${path}"`,
    );
  }
  const bytes = await readFile(path);
  if (bytes.length > MAX_KEY_FILE_BYTES) throw new KeyFileError('ERR_KEY_FILE_MALFORMED', path, `Cannot load key file "${path}": file is too large`);
  return parseSecretKeyFile(bytes.toString('latin1'), path);
}

/**
 * Write `key` to `path` with mode 0600, creating parent directories (mode 0700).
 * Refuses to replace an existing file unless `overwrite` is set; the write goes to a
 * temporary file first, so a crash never leaves a half-written key behind.
 *
 * @throws {KeyFileError} `ERR_KEY_FILE_EXISTS`
 */
export async function saveSecretKey(path: string, key: SecretKey, options: { overwrite?: boolean } = {}): Promise<void> {
  await makeDir(dirname(path), 0o700);
  const tmp = `${path}.tmp-${process.pid}-${toHex(crypto.getRandomValues(new Uint8Array(4)))}`;
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(formatSecretKey(key));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (options.overwrite) {
      await rename(tmp, path);
    } else {
      // link() fails if `path` exists, which makes "create only if absent" atomic.
      try {
        await link(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new KeyFileError('ERR_KEY_FILE_EXISTS', path, `Cannot write key file "${path}": it already exists (refusing to replace an identity)`);
        }
        throw err;
      }
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Load the key at `path`, or create one there if no file exists. A malformed existing file
 * is an error, never replaced.
 */
export async function loadOrCreateSecretKey(path: string): Promise<{ key: SecretKey; created: boolean }> {
  try {
    return { key: await loadSecretKey(path), created: false };
  } catch (err) {
    if (!(err instanceof KeyFileError) || err.code !== 'ERR_KEY_FILE_NOT_FOUND') throw err;
  }
  const key = SecretKey.generate();
  try {
    await saveSecretKey(path, key);
    return { key, created: true };
  } catch (err) {
    // Another process created it first: use theirs.
    if (err instanceof KeyFileError && err.code === 'ERR_KEY_FILE_EXISTS') return { key: await loadSecretKey(path), created: false };
    throw err;
  }
}
