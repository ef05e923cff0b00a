/**
 * NetworkIdentity: `init` creates the key (0600), a UUID v4 device id and a name in a 0700
 * data dir, and returns the same identity on the next call; a malformed identity is an
 * error, never replaced; sign/verify.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NetworkIdentity, isUuidV4 } from '../../src/service/identity.ts';
import { SecretKey, saveSecretKey } from '../../src/index.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = join(await mkdtemp(join(tmpdir(), 'sdnet-identity-')), 'data');
  dirs.push(d);
  return d;
}

describe('NetworkIdentity', () => {
  it('init creates key, device id and name; the next init and load return the same', async () => {
    const dir = await tempDir();
    const { identity, created } = await NetworkIdentity.init(dir, { name: 'my laptop' });
    expect(created).toBe(true);
    expect(isUuidV4(identity.deviceId)).toBe(true);
    expect(identity.name).toBe('my laptop');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'secret.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'device.json'))).mode & 0o777).toBe(0o600);
    const again = await NetworkIdentity.init(dir, { name: 'ignored' });
    expect(again.created).toBe(false);
    expect(again.identity.deviceId).toBe(identity.deviceId);
    expect(again.identity.name).toBe('my laptop');
    expect(again.identity.endpointId.equals(identity.endpointId)).toBe(true);
    const loaded = await NetworkIdentity.load(dir);
    expect(loaded.endpointId.equals(identity.endpointId)).toBe(true);
    expect(loaded.info).toMatchObject({ deviceId: identity.deviceId, name: 'my laptop', os: process.platform });
  });

  it('adopts a key written by sdnet keygen', async () => {
    const dir = await tempDir();
    const key = SecretKey.generate();
    await saveSecretKey(join(dir, 'secret.key'), key);
    const { identity } = await NetworkIdentity.init(dir);
    expect(identity.endpointId.equals(key.public())).toBe(true);
  });

  it('a malformed device.json is ERR_IDENTITY_MALFORMED and stays as it was', async () => {
    const dir = await tempDir();
    await NetworkIdentity.init(dir);
    for (const bad of ['{', '{"version":1,"deviceId":"nope","name":"x"}', '{"version":1,"deviceId":"8b0d8f38-4b6a-4c1e-9a51-5f0a3c2b1d00","name":""}']) {
      await writeFile(join(dir, 'device.json'), bad);
      await expect(NetworkIdentity.init(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY_MALFORMED' });
      await expect(NetworkIdentity.load(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY_MALFORMED' });
      expect(await readFile(join(dir, 'device.json'), 'utf8')).toBe(bad);
    }
  });

  it('load without init is ERR_IDENTITY_NOT_FOUND; a malformed key is ERR_KEY_FILE_MALFORMED', async () => {
    const dir = await tempDir();
    await expect(NetworkIdentity.load(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY_NOT_FOUND' });
    await NetworkIdentity.init(dir);
    await writeFile(join(dir, 'secret.key'), 'not a key\n', { mode: 0o600 });
    await expect(NetworkIdentity.load(dir)).rejects.toMatchObject({ code: 'ERR_KEY_FILE_MALFORMED' });
  });

  it('signs and verifies', async () => {
    const { identity } = await NetworkIdentity.init(await tempDir());
    const msg = new TextEncoder().encode('introduce B to C');
    const sig = identity.sign(msg);
    expect(NetworkIdentity.verify(identity.endpointId, msg, sig)).toBe(true);
    expect(NetworkIdentity.verify(identity.endpointId, new TextEncoder().encode('other'), sig)).toBe(false);
    expect(NetworkIdentity.verify(SecretKey.generate().public(), msg, sig)).toBe(false);
    expect(NetworkIdentity.verify(identity.endpointId, msg, sig.subarray(0, 10))).toBe(false);
  });
});
