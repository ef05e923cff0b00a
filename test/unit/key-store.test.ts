import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyFileError, SecretKey, defaultKeyPath, loadOrCreateSecretKey, loadSecretKey, saveSecretKey } from '../../src/identity/index.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sdnet-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeyFileError);
    return (err as KeyFileError).code;
  }
  throw new Error('expected a KeyFileError');
}

describe('key file store', () => {
  it('creates the file with mode 0600 and loads the same key', async () => {
    const path = join(dir, 'nested', 'k.key');
    const key = SecretKey.generate();
    await saveSecretKey(path, key);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'nested'))).mode & 0o777).toBe(0o700);
    expect((await loadSecretKey(path)).public().equals(key.public())).toBe(true);
    expect(await readFile(path, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
  });

  it('never replaces an existing identity unless asked', async () => {
    const path = join(dir, 'k.key');
    const first = SecretKey.generate();
    await saveSecretKey(path, first);
    expect(await codeOf(saveSecretKey(path, SecretKey.generate()))).toBe('ERR_KEY_FILE_EXISTS');
    expect((await loadSecretKey(path)).public().equals(first.public())).toBe(true);
    const second = SecretKey.generate();
    await saveSecretKey(path, second, { overwrite: true });
    expect((await loadSecretKey(path)).public().equals(second.public())).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  const malformed: Array<[string, string]> = [
    ['empty', ''],
    ['truncated', 'ab'.repeat(31)],
    ['too long', 'ab'.repeat(33)],
    ['upper-case hex', 'AB'.repeat(32)],
    ['not hex', 'zz'.repeat(32)],
    ['two lines', `${'ab'.repeat(32)}\n${'ab'.repeat(32)}\n`],
    ['leading space', ` ${'ab'.repeat(32)}`],
  ];
  for (const [name, contents] of malformed) {
    it(`refuses a malformed file: ${name}`, async () => {
      const path = join(dir, 'bad.key');
      await writeFile(path, contents, { mode: 0o600 });
      expect(await codeOf(loadSecretKey(path))).toBe('ERR_KEY_FILE_MALFORMED');
    });
  }

  it('refuses a file that is too large, without reading it all', async () => {
    const path = join(dir, 'big.key');
    await writeFile(path, 'a'.repeat(1 << 20), { mode: 0o600 });
    expect(await codeOf(loadSecretKey(path))).toBe('ERR_KEY_FILE_MALFORMED');
  });

  it('refuses a file others can read, as OpenSSH does', async () => {
    const path = join(dir, 'open.key');
    await saveSecretKey(path, SecretKey.generate());
    await chmod(path, 0o644);
    expect(await codeOf(loadSecretKey(path))).toBe('ERR_KEY_FILE_PERMISSIONS');
  });

  it('reports a missing file with its own code', async () => {
    expect(await codeOf(loadSecretKey(join(dir, 'none.key')))).toBe('ERR_KEY_FILE_NOT_FOUND');
  });

  it('loadOrCreate creates once, then loads; a malformed file is an error, never replaced', async () => {
    const path = join(dir, 'auto.key');
    const a = await loadOrCreateSecretKey(path);
    const b = await loadOrCreateSecretKey(path);
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.key.public().equals(a.key.public())).toBe(true);
    await writeFile(path, 'garbage', { mode: 0o600 });
    expect(await codeOf(loadOrCreateSecretKey(path))).toBe('ERR_KEY_FILE_MALFORMED');
    expect(await readFile(path, 'utf8')).toBe('garbage');
  });

  it('chooses the default path from SDNET_HOME, then XDG_CONFIG_HOME', () => {
    expect(defaultKeyPath({ SDNET_HOME: '/x' })).toBe('/x/secret.key');
    expect(defaultKeyPath({ XDG_CONFIG_HOME: '/c' })).toBe('/c/sdnet/secret.key');
  });
});
