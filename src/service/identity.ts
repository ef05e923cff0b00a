/**
 * `NetworkIdentity`: who this device is. The Ed25519 secret key in the data dir
 * (`secret.key`, the file `sdnet keygen` writes; its public key is the EndpointId), a device
 * id (UUID v4, chosen once) and the device's name, kept in `device.json`, and what the
 * device says about itself to paired peers (OS, kind, app version).
 *
 * Unlike Spacedrive (spacedrive-net.md §3) the key is not derived from another secret; it is
 * the key file itself, 0600, refused when others can read it.
 *
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname, platform, release } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateSecretKey, loadSecretKey } from '../identity/key-store.ts';
import type { PublicKey, SecretKey } from '../identity/keys.ts';
import { Signature } from '../identity/keys.ts';
import { packageVersion } from '../cli/version.ts';
import { SdnetError } from '../util/errors.ts';
import { makeDir } from '../util/make-dir.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { MAX_DEVICE_NAME_LENGTH, MAX_IDENTITY_FILE_BYTES, MAX_INFO_FIELD_LENGTH } from './limits.ts';

/** What kind of machine a device is (shown to peers; Spacedrive always said Desktop). */
export type DeviceKind = 'desktop' | 'laptop' | 'server' | 'mobile' | 'tablet' | 'other';
export const DEVICE_KINDS: readonly DeviceKind[] = ['desktop', 'laptop', 'server', 'mobile', 'tablet', 'other'];

/** What a device tells paired peers about itself. */
export interface DeviceInfo {
  /** UUID v4, chosen when the device was initialised. */
  readonly deviceId: string;
  readonly name: string;
  /** OS family (`linux`, `darwin`, `win32`, `android`, …). */
  readonly os: string;
  readonly osVersion: string;
  readonly kind: DeviceKind;
  /** sdnet's version on the device. */
  readonly appVersion: string;
}

/** The data dir holds no identity, or a malformed one. */
export class IdentityError extends SdnetError {
  readonly path: string;
  constructor(code: 'ERR_IDENTITY_NOT_FOUND' | 'ERR_IDENTITY_MALFORMED', path: string, message: string) {
    super(code, message);
    this.name = 'IdentityError';
    this.path = path;
  }
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Whether `s` is a lower-case UUID v4. */
export function isUuidV4(s: unknown): s is string {
  return typeof s === 'string' && UUID_V4.test(s);
}

/** A device name as shown and typed: 1..64 characters, no control characters, trimmed. */
export function validateDeviceName(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError('A device name is a string');
  const n = name.trim();
  if (n.length === 0 || n.length > MAX_DEVICE_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(n)) {
    throw new RangeError(`A device name is 1..${MAX_DEVICE_NAME_LENGTH} characters without control characters`);
  }
  return n;
}

/** Validate device info received from a peer or read from disk; undefined if malformed. */
export function parseDeviceInfo(v: unknown): DeviceInfo | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const str = (x: unknown): x is string => typeof x === 'string' && x.length <= MAX_INFO_FIELD_LENGTH;
  if (!isUuidV4(o.deviceId) || !str(o.os) || !str(o.osVersion) || !str(o.appVersion)) return undefined;
  if (!DEVICE_KINDS.includes(o.kind as DeviceKind)) return undefined;
  let name: string;
  try {
    name = validateDeviceName(o.name);
  } catch {
    return undefined;
  }
  return { deviceId: o.deviceId, name, os: o.os, osVersion: o.osVersion, kind: o.kind as DeviceKind, appVersion: o.appVersion };
}

/** A guess at what this machine is: a battery means a laptop. */
function localKind(): DeviceKind {
  const p = platform();
  if (p === 'android') return 'mobile';
  try {
    if (p === 'linux' && (existsSync('/sys/class/power_supply/BAT0') || existsSync('/sys/class/power_supply/BAT1'))) return 'laptop';
  } catch {
    // unknown
  }
  return 'desktop';
}

interface DeviceFile {
  version: 1;
  deviceId: string;
  name: string;
  createdAt: string;
}

export class NetworkIdentity {
  readonly dataDir: string;
  readonly secretKey: SecretKey;
  readonly deviceId: string;
  #name: string;
  readonly #createdAt: string;

  private constructor(dataDir: string, secretKey: SecretKey, file: DeviceFile) {
    this.dataDir = dataDir;
    this.secretKey = secretKey;
    this.deviceId = file.deviceId;
    this.#name = file.name;
    this.#createdAt = file.createdAt;
  }

  static keyPath(dataDir: string): string {
    return join(dataDir, 'secret.key');
  }

  static devicePath(dataDir: string): string {
    return join(dataDir, 'device.json');
  }

  /**
   * Load the identity in `dataDir`, creating what is missing (the data dir 0700, the key,
   * the device id, the name — `name` or the host name). An existing malformed file is an
   * error, never replaced.
   *
   * @throws {IdentityError} `ERR_IDENTITY_MALFORMED`; {@link KeyFileError} for the key file
   */
  static async init(dataDir: string, options: { name?: string } = {}): Promise<{ identity: NetworkIdentity; created: boolean }> {
    await makeDir(dataDir, 0o700);
    const { key, created: keyCreated } = await loadOrCreateSecretKey(NetworkIdentity.keyPath(dataDir));
    const path = NetworkIdentity.devicePath(dataDir);
    const existing = await NetworkIdentity.#readDeviceFile(path);
    if (existing !== undefined) return { identity: new NetworkIdentity(dataDir, key, existing), created: keyCreated };
    const file: DeviceFile = {
      version: 1,
      deviceId: crypto.randomUUID(),
      name: validateDeviceName(options.name ?? (hostname() || 'sdnet device')),
      createdAt: new Date().toISOString(),
    };
    await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
    return { identity: new NetworkIdentity(dataDir, key, file), created: true };
  }

  /**
   * Load an existing identity.
   *
   * @throws {IdentityError} `ERR_IDENTITY_NOT_FOUND` when `dataDir` has none (run `sdnet init`),
   *   `ERR_IDENTITY_MALFORMED`; {@link KeyFileError} for the key file
   */
  static async load(dataDir: string): Promise<NetworkIdentity> {
    const path = NetworkIdentity.devicePath(dataDir);
    const file = await NetworkIdentity.#readDeviceFile(path);
    if (file === undefined) throw new IdentityError('ERR_IDENTITY_NOT_FOUND', path, `No device identity in ${dataDir} (run sdnet init)`);
    const key = await loadSecretKey(NetworkIdentity.keyPath(dataDir));
    return new NetworkIdentity(dataDir, key, file);
  }

  static async #readDeviceFile(path: string): Promise<DeviceFile | undefined> {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const bad = (why: string): IdentityError => new IdentityError('ERR_IDENTITY_MALFORMED', path, `Cannot load ${path}: ${why}`);
    if (!info.isFile()) throw bad('not a regular file');
    if (info.size > MAX_IDENTITY_FILE_BYTES) throw bad(`file is too large (${info.size} bytes)`);
    let v: unknown;
    try {
      v = JSON.parse(await readFile(path, 'utf8'));
    } catch {
      throw bad('not valid JSON');
    }
    const o = v as Partial<DeviceFile> | null;
    if (typeof o !== 'object' || o === null || o.version !== 1) throw bad('unknown format (expected version 1)');
    if (!isUuidV4(o.deviceId)) throw bad('deviceId is not a UUID v4');
    try {
      validateDeviceName(o.name);
    } catch {
      throw bad('name is not a valid device name');
    }
    return { version: 1, deviceId: o.deviceId, name: (o.name as string).trim(), createdAt: String(o.createdAt ?? '') };
  }

  /** Our EndpointId (the public key). */
  get endpointId(): PublicKey {
    return this.secretKey.public();
  }

  get name(): string {
    return this.#name;
  }

  /** What we tell paired peers about ourselves. */
  get info(): DeviceInfo {
    return { deviceId: this.deviceId, name: this.#name, os: platform(), osVersion: release(), kind: localKind(), appVersion: packageVersion() };
  }

  /** Rename the device (persisted). */
  async rename(name: string): Promise<void> {
    const n = validateDeviceName(name);
    const file: DeviceFile = { version: 1, deviceId: this.deviceId, name: n, createdAt: this.#createdAt };
    await writeFileAtomic(NetworkIdentity.devicePath(this.dataDir), `${JSON.stringify(file, null, 2)}\n`, 0o600);
    this.#name = n;
  }

  /** Sign `data` with the device key (Ed25519). */
  sign(data: Uint8Array): Uint8Array {
    return this.secretKey.sign(data).toBytes();
  }

  /** Verify an Ed25519 signature by `signer` (strict, as iroh). */
  static verify(signer: PublicKey, data: Uint8Array, signature: Uint8Array): boolean {
    if (signature.length !== 64) return false;
    return signer.verify(data, Signature.fromBytes(signature));
  }
}
