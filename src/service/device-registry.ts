/**
 * `DeviceRegistry`: every device this one knows, with its state, and the paired ones
 * persisted in the data dir.
 *
 * States and the events that move between them are one explicit table,
 * {@link DEVICE_TRANSITIONS}; a transition the table does not list is an error
 * (`ERR_DEVICE_TRANSITION`), never a silent overwrite. Spacedrive declared five states and
 * entered two of them (spacedrive-net.md §5.1); here each has an event that enters it:
 *
 * | event            | from                                    | to           | who                          |
 * |------------------|-----------------------------------------|--------------|------------------------------|
 * | `discover`       | (none), discovered                      | discovered   | discovery (mDNS, pkarr)      |
 * | `start-pairing`  | (none), discovered                      | pairing      | pairing                      |
 * | `fail-pairing`   | pairing                                 | (removed)    | pairing (failed, cancelled)  |
 * | `pair`           | (none), discovered, pairing             | paired       | pairing, vouching, fixtures  |
 * | `connect`        | paired, disconnected                    | connected    | event loop                   |
 * | `disconnect`     | connected                               | disconnected | event loop                   |
 * | `unpair`         | paired, connected, disconnected         | (removed)    | the user                     |
 * | `expire`         | discovered                              | (removed)    | discovery (silent too long)  |
 *
 * Paired devices (paired, connected, disconnected) are written to `devices.json` with
 * write-temp → fsync → rename → fsync-dir, so a crash leaves the old or the new file, never
 * a torn one; they load as `paired`. A file that does not parse or validate is renamed to
 * `devices.json.corrupt-<time>` and reported in {@link DeviceRegistry.problems} (and the
 * `problem` event) — never silently replaced. Link keys are secrets: they are in the file
 * (0600) and available through {@link DeviceRegistry.linkKey}, and never in a snapshot, an
 * event, JSON or `inspect` output.
 *
 * Mutations are for the service's event loop, its single writer; everything else reads
 * snapshots.
 *
 * @module
 */
import { readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import { PublicKey } from '../identity/keys.ts';
import { SdnetError } from '../util/errors.ts';
import { Emitter, type Listener, type ListenOptions } from '../util/emitter.ts';
import { removeStaleTemps, writeFileAtomic } from './atomic-file.ts';
import { parseDeviceInfo, type DeviceInfo } from './identity.ts';
import { MAX_DEVICE_ADDRESSES, MAX_DEVICES, MAX_REGISTRY_FILE_BYTES, REGISTRY_SAVE_DELAY_MS } from './limits.ts';

export type DeviceState = 'discovered' | 'pairing' | 'paired' | 'connected' | 'disconnected';
export const DEVICE_STATES: readonly DeviceState[] = ['discovered', 'pairing', 'paired', 'connected', 'disconnected'];

export type DeviceEvent = 'discover' | 'start-pairing' | 'fail-pairing' | 'pair' | 'connect' | 'disconnect' | 'unpair' | 'expire';

/** The whole state machine: for each event, the states it may start from and where it goes. */
export const DEVICE_TRANSITIONS: Readonly<Record<DeviceEvent, { readonly from: readonly (DeviceState | 'none')[]; readonly to: DeviceState | 'removed' }>> = {
  discover: { from: ['none', 'discovered'], to: 'discovered' },
  'start-pairing': { from: ['none', 'discovered'], to: 'pairing' },
  'fail-pairing': { from: ['pairing'], to: 'removed' },
  pair: { from: ['none', 'discovered', 'pairing'], to: 'paired' },
  connect: { from: ['paired', 'disconnected'], to: 'connected' },
  disconnect: { from: ['connected'], to: 'disconnected' },
  unpair: { from: ['paired', 'connected', 'disconnected'], to: 'removed' },
  expire: { from: ['discovered'], to: 'removed' },
};

/** Where `event` takes a device in state `from` (`'none'`: unknown), or undefined if not allowed. */
export function nextState(from: DeviceState | 'none', event: DeviceEvent): DeviceState | 'removed' | undefined {
  const t = DEVICE_TRANSITIONS[event];
  return t.from.includes(from) ? t.to : undefined;
}

/** States in which a device is paired (may reach every protocol). */
export const PAIRED_STATES: readonly DeviceState[] = ['paired', 'connected', 'disconnected'];

/** How a connected device is reached now. */
export interface ConnectionInfo {
  readonly path: 'direct' | 'relay';
  /** Last measured round trip (health-check ping), ms. */
  readonly rttMs: number | undefined;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** When the connection came up (ms since the epoch). */
  readonly since: number;
}

/** What the registry shows about a device (no secrets). */
export interface DeviceSnapshot {
  /** The EndpointId, hex: the trust anchor. */
  readonly endpointId: string;
  readonly deviceId: string | undefined;
  readonly name: string | undefined;
  readonly info: DeviceInfo | undefined;
  readonly state: DeviceState;
  /** Last known address (relay URLs, direct addresses). */
  readonly addr: { readonly relayUrls: readonly string[]; readonly directAddresses: readonly string[] };
  readonly connection: ConnectionInfo | undefined;
  /** Last time we heard from it (ms since the epoch). */
  readonly lastSeen: number | undefined;
  readonly pairedAt: number | undefined;
  readonly discoveredAt: number | undefined;
}

/** A state change, as the registry emits it. */
export interface DeviceStateChange {
  readonly device: DeviceSnapshot;
  readonly from: DeviceState | 'none';
  readonly to: DeviceState | 'removed';
  readonly event: DeviceEvent;
}

/** Something wrong with the registry file. */
export interface RegistryProblem {
  readonly code: 'ERR_REGISTRY_CORRUPT' | 'ERR_REGISTRY_WRITE';
  readonly message: string;
  /** For a corrupt file: where it was moved. */
  readonly keptAs?: string;
}

export type DeviceRegistryEvents = {
  'state-changed': DeviceStateChange;
  /** Connection info, address, name or last-seen changed without a state change. */
  updated: { readonly device: DeviceSnapshot };
  problem: RegistryProblem;
};

/** An illegal transition, or a lookup that found nothing or too much. */
export class DeviceRegistryError extends SdnetError {
  constructor(code: 'ERR_DEVICE_TRANSITION' | 'ERR_DEVICE_UNKNOWN' | 'ERR_DEVICE_AMBIGUOUS' | 'ERR_REGISTRY_FULL' | 'ERR_INVALID_ARGUMENT', message: string) {
    super(code, message);
    this.name = 'DeviceRegistryError';
  }
}

interface Entry {
  readonly id: PublicKey;
  state: DeviceState;
  info: DeviceInfo | undefined;
  addr: EndpointAddr;
  connection: ConnectionInfo | undefined;
  lastSeen: number | undefined;
  pairedAt: number | undefined;
  discoveredAt: number | undefined;
  linkKey: Uint8Array | undefined;
  /** The snapshot of the current contents (dropped by every change). */
  snap?: DeviceSnapshot | undefined;
}

/** Link keys are 32 bytes. */
export const LINK_KEY_LENGTH = 32;

interface FileDevice {
  endpointId: string;
  info: DeviceInfo;
  pairedAt: number;
  lastSeen: number | null;
  addr: { relayUrls: string[]; directAddresses: string[] };
  linkKey: string;
}

interface RegistryFile {
  version: 1;
  /** Incremented by each write (a crash test reads it to tell old from new). */
  generation: number;
  devices: FileDevice[];
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function keyOf(id: PublicKey | string): string {
  return typeof id === 'string' ? id : id.toString();
}

/** A bounded copy of an address (a peer may tell us many). */
function boundAddr(addr: EndpointAddr): EndpointAddr {
  if (addr.relayUrls.length + addr.directAddresses.length <= MAX_DEVICE_ADDRESSES) return addr;
  const relays = addr.relayUrls.slice(0, 4);
  return EndpointAddr.from({ id: addr.id, relayUrls: relays, directAddresses: addr.directAddresses.slice(0, MAX_DEVICE_ADDRESSES - relays.length) });
}

function snapshot(e: Entry): DeviceSnapshot {
  e.snap ??= makeSnapshot(e);
  return e.snap;
}

function makeSnapshot(e: Entry): DeviceSnapshot {
  return Object.freeze({
    endpointId: e.id.toString(),
    deviceId: e.info?.deviceId,
    name: e.info?.name,
    info: e.info,
    state: e.state,
    addr: Object.freeze({ relayUrls: e.addr.relayUrls.map(String), directAddresses: e.addr.directAddresses.map(String) }),
    connection: e.connection,
    lastSeen: e.lastSeen,
    pairedAt: e.pairedAt,
    discoveredAt: e.discoveredAt,
  });
}

function parseFile(text: string): RegistryFile {
  const v = JSON.parse(text) as Partial<RegistryFile> | null;
  if (typeof v !== 'object' || v === null || v.version !== 1) throw new Error('unknown format (expected version 1)');
  if (!Number.isSafeInteger(v.generation) || (v.generation as number) < 0) throw new Error('generation is not a counter');
  if (!Array.isArray(v.devices) || v.devices.length > MAX_DEVICES) throw new Error('devices is not a list of at most 10,000');
  const seen = new Set<string>();
  for (const [i, d] of v.devices.entries()) {
    const where = `device ${i}`;
    if (typeof d !== 'object' || d === null) throw new Error(`${where} is not an object`);
    try {
      PublicKey.fromString(d.endpointId);
    } catch {
      throw new Error(`${where}: endpointId is not a valid key`);
    }
    if (seen.has(d.endpointId)) throw new Error(`${where}: endpointId appears twice`);
    seen.add(d.endpointId);
    if (parseDeviceInfo(d.info) === undefined) throw new Error(`${where}: info is malformed`);
    if (!Number.isFinite(d.pairedAt)) throw new Error(`${where}: pairedAt is not a time`);
    if (d.lastSeen !== null && !Number.isFinite(d.lastSeen)) throw new Error(`${where}: lastSeen is not a time`);
    if (typeof d.linkKey !== 'string' || Buffer.from(d.linkKey, 'base64').length !== LINK_KEY_LENGTH || b64(Buffer.from(d.linkKey, 'base64')) !== d.linkKey) {
      throw new Error(`${where}: linkKey is not ${LINK_KEY_LENGTH} bytes of base64`);
    }
    if (typeof d.addr !== 'object' || d.addr === null || !Array.isArray(d.addr.relayUrls) || !Array.isArray(d.addr.directAddresses)) throw new Error(`${where}: addr is malformed`);
    try {
      EndpointAddr.from({ id: d.endpointId, relayUrls: d.addr.relayUrls, directAddresses: d.addr.directAddresses });
    } catch {
      throw new Error(`${where}: addr is malformed`);
    }
  }
  return v as RegistryFile;
}

export class DeviceRegistry {
  /** The registry file, or undefined for an in-memory registry. */
  readonly path: string | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #events = new Emitter<DeviceRegistryEvents>();
  readonly #problems: RegistryProblem[] = [];
  #generation = 0;
  #dirty = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  #again = false;
  #closed = false;

  private constructor(path: string | undefined) {
    this.path = path;
  }

  /** The registry file of a data dir. */
  static pathIn(dataDir: string): string {
    return join(dataDir, 'devices.json');
  }

  /** A registry that is never written (tests, tools). */
  static inMemory(): DeviceRegistry {
    return new DeviceRegistry(undefined);
  }

  /**
   * Open the registry of `dataDir` (the file need not exist). A corrupt file is moved aside
   * and reported in {@link problems}; the registry then starts empty.
   */
  static async open(dataDir: string): Promise<DeviceRegistry> {
    const path = DeviceRegistry.pathIn(dataDir);
    const registry = new DeviceRegistry(path);
    await removeStaleTemps(path);
    let text: string | undefined;
    try {
      const info = await stat(path);
      if (info.size > MAX_REGISTRY_FILE_BYTES) {
        await registry.#keepAside(path, `file is too large (${info.size} bytes)`);
        return registry;
      }
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return registry;
    }
    let file: RegistryFile;
    try {
      file = parseFile(text);
    } catch (err) {
      await registry.#keepAside(path, (err as Error).message);
      return registry;
    }
    registry.#generation = file.generation;
    for (const d of file.devices) {
      const id = PublicKey.fromString(d.endpointId);
      registry.#entries.set(d.endpointId, {
        id,
        state: 'paired',
        info: parseDeviceInfo(d.info),
        addr: EndpointAddr.from({ id, relayUrls: d.addr.relayUrls, directAddresses: d.addr.directAddresses }),
        connection: undefined,
        lastSeen: d.lastSeen ?? undefined,
        pairedAt: d.pairedAt,
        discoveredAt: undefined,
        linkKey: new Uint8Array(Buffer.from(d.linkKey, 'base64')),
      });
    }
    return registry;
  }

  async #keepAside(path: string, why: string): Promise<void> {
    const keptAs = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(path, keptAs);
    const problem: RegistryProblem = { code: 'ERR_REGISTRY_CORRUPT', message: `The device registry ${path} is corrupt (${why}); it was kept as ${keptAs} and the registry starts empty`, keptAs };
    this.#problems.push(problem);
  }

  /** Problems met so far (a corrupt file kept aside, failed writes). */
  get problems(): readonly RegistryProblem[] {
    return this.#problems;
  }

  /** The generation of the last write (or of the file loaded). */
  get generation(): number {
    return this.#generation;
  }

  // ------------------------------------------------------------------ reads

  on<K extends keyof DeviceRegistryEvents>(type: K, listener: Listener<DeviceRegistryEvents[K]>, options: ListenOptions = {}): () => void {
    return this.#events.on(type, listener, options);
  }

  next<K extends keyof DeviceRegistryEvents>(type: K, options: ListenOptions & { filter?: (event: DeviceRegistryEvents[K]) => boolean } = {}): Promise<DeviceRegistryEvents[K]> {
    return this.#events.next(type, options);
  }

  /** Every device, paired ones first, then by name. */
  devices(): DeviceSnapshot[] {
    const rank = (s: DeviceState): number => (PAIRED_STATES.includes(s) ? 0 : s === 'pairing' ? 1 : 2);
    return [...this.#entries.values()]
      .map(snapshot)
      .sort((a, b) => rank(a.state) - rank(b.state) || (a.name ?? '').localeCompare(b.name ?? '') || a.endpointId.localeCompare(b.endpointId));
  }

  get(id: PublicKey | string): DeviceSnapshot | undefined {
    const e = this.#entries.get(keyOf(id));
    return e === undefined ? undefined : snapshot(e);
  }

  /** The device's state, or `'none'` when unknown. */
  state(id: PublicKey | string): DeviceState | 'none' {
    return this.#entries.get(keyOf(id))?.state ?? 'none';
  }

  /** Whether `id` is paired (may reach every protocol). */
  isPaired(id: PublicKey | string): boolean {
    const e = this.#entries.get(keyOf(id));
    return e !== undefined && PAIRED_STATES.includes(e.state);
  }

  /** The link key shared with a paired device (a secret: never log it). */
  linkKey(id: PublicKey | string): Uint8Array | undefined {
    return this.#entries.get(keyOf(id))?.linkKey?.slice();
  }

  /** The last known address of a device. */
  addr(id: PublicKey | string): EndpointAddr | undefined {
    return this.#entries.get(keyOf(id))?.addr;
  }

  /** The EndpointId of what `query` names ({@link resolve}'s rules), without re-parsing a known id. */
  idOf(query: string | PublicKey): PublicKey {
    if (typeof query !== 'string') return query;
    const direct = this.#entries.get(query);
    if (direct !== undefined) return direct.id;
    return this.#entries.get(this.resolve(query).endpointId)!.id;
  }

  /** The paired devices' ids. */
  pairedIds(): PublicKey[] {
    return [...this.#entries.values()].filter((e) => PAIRED_STATES.includes(e.state)).map((e) => e.id);
  }

  /**
   * Resolve what a user typed: a device name, a device id, or an EndpointId (64 hex,
   * z-base-32, or a unique hex prefix of at least 8 characters). Only known devices match.
   *
   * @throws {DeviceRegistryError} `ERR_DEVICE_UNKNOWN`, `ERR_DEVICE_AMBIGUOUS`
   */
  resolve(query: string): DeviceSnapshot {
    const q = query.trim();
    const all = [...this.#entries.values()];
    const exact = (list: Entry[]): DeviceSnapshot | undefined => {
      if (list.length === 1) return snapshot(list[0]!);
      if (list.length > 1) throw new DeviceRegistryError('ERR_DEVICE_AMBIGUOUS', `"${q}" matches ${list.length} devices: ${list.map((e) => `${e.info?.name ?? '?'} (${e.id.fmtShort()})`).join(', ')}`);
      return undefined;
    };
    let id: string | undefined;
    try {
      id = PublicKey.fromString(q).toString();
    } catch {
      try {
        id = PublicKey.fromZ32(q).toString();
      } catch {
        id = undefined;
      }
    }
    if (id !== undefined) {
      const e = this.#entries.get(id);
      if (e !== undefined) return snapshot(e);
    }
    const byDeviceId = exact(all.filter((e) => e.info?.deviceId === q.toLowerCase()));
    if (byDeviceId) return byDeviceId;
    const byName = exact(all.filter((e) => e.info?.name === q));
    if (byName) return byName;
    if (/^[0-9a-f]{8,63}$/i.test(q)) {
      const byPrefix = exact(all.filter((e) => e.id.toString().startsWith(q.toLowerCase())));
      if (byPrefix) return byPrefix;
    }
    const byNameCi = exact(all.filter((e) => e.info?.name.toLowerCase() === q.toLowerCase()));
    if (byNameCi) return byNameCi;
    throw new DeviceRegistryError('ERR_DEVICE_UNKNOWN', `No known device is "${q}" (a name, device id, or EndpointId / hex prefix of at least 8 characters)`);
  }

  // ------------------------------------------------------------------ mutations (the event loop's)

  #apply(id: PublicKey, event: DeviceEvent, update: (e: Entry) => void): DeviceSnapshot {
    const key = id.toString();
    const existing = this.#entries.get(key);
    const from = existing?.state ?? 'none';
    const to = nextState(from, event);
    if (to === undefined) throw new DeviceRegistryError('ERR_DEVICE_TRANSITION', `Device ${id.fmtShort()}: "${event}" is not allowed in state ${from}`);
    if (existing === undefined && this.#entries.size >= MAX_DEVICES) throw new DeviceRegistryError('ERR_REGISTRY_FULL', `The registry holds ${MAX_DEVICES} devices already`);
    const entry: Entry = existing ?? {
      id,
      state: 'discovered',
      info: undefined,
      addr: EndpointAddr.from({ id }),
      connection: undefined,
      lastSeen: undefined,
      pairedAt: undefined,
      discoveredAt: undefined,
      linkKey: undefined,
    };
    update(entry);
    entry.snap = undefined;
    const wasPersisted = existing !== undefined && PAIRED_STATES.includes(from as DeviceState);
    if (to === 'removed') this.#entries.delete(key);
    else {
      entry.state = to;
      entry.snap = undefined;
      this.#entries.set(key, entry);
    }
    const snap = snapshot(entry);
    const persisted = to !== 'removed' && PAIRED_STATES.includes(to);
    // Pairings and unpairings are written at once; connect/disconnect (last seen) may wait.
    if (persisted !== wasPersisted) this.#markDirty(true);
    else if (persisted) this.#markDirty(false);
    this.#events.emit('state-changed', { device: to === 'removed' ? { ...snap, state: from as DeviceState } : snap, from, to, event });
    return snap;
  }

  #entry(id: PublicKey): Entry {
    const e = this.#entries.get(id.toString());
    if (e === undefined) throw new DeviceRegistryError('ERR_DEVICE_UNKNOWN', `Device ${id.fmtShort()} is not in the registry`);
    return e;
  }

  /**
   * A device was heard (LAN, lookup). Unknown or discovered: it becomes (stays) discovered;
   * any other state: only its address is refreshed.
   */
  discover(addr: EndpointAddr, info?: DeviceInfo): DeviceSnapshot {
    const e = this.#entries.get(addr.id.toString());
    const now = Date.now();
    if (e !== undefined && e.state !== 'discovered') {
      this.updateAddr(addr);
      return snapshot(e);
    }
    return this.#apply(addr.id, 'discover', (x) => {
      x.addr = boundAddr(addr);
      if (info) x.info = info;
      x.discoveredAt = now;
      x.lastSeen = now;
    });
  }

  /** A pairing with `id` started. */
  startPairing(id: PublicKey, addr?: EndpointAddr): DeviceSnapshot {
    return this.#apply(id, 'start-pairing', (x) => {
      if (addr) x.addr = boundAddr(addr);
    });
  }

  /** A pairing with `id` failed or was cancelled: the device is forgotten. */
  failPairing(id: PublicKey): DeviceSnapshot {
    return this.#apply(id, 'fail-pairing', () => undefined);
  }

  /**
   * `id` is now paired: its info and the link key both sides derived. Written to disk at
   * once ({@link flush} waits for it).
   */
  pair(options: { id: PublicKey; info: DeviceInfo; linkKey: Uint8Array; addr?: EndpointAddr; pairedAt?: number }): DeviceSnapshot {
    if (!(options.linkKey instanceof Uint8Array) || options.linkKey.length !== LINK_KEY_LENGTH) throw new DeviceRegistryError('ERR_INVALID_ARGUMENT', `A link key is ${LINK_KEY_LENGTH} bytes`);
    const info = parseDeviceInfo(options.info);
    if (info === undefined) throw new DeviceRegistryError('ERR_INVALID_ARGUMENT', 'Device info is malformed');
    if (options.addr && !options.addr.id.equals(options.id)) throw new DeviceRegistryError('ERR_INVALID_ARGUMENT', 'The address names another endpoint');
    return this.#apply(options.id, 'pair', (x) => {
      x.info = info;
      x.linkKey = options.linkKey.slice();
      x.pairedAt = options.pairedAt ?? Date.now();
      x.discoveredAt = undefined;
      if (options.addr) x.addr = boundAddr(options.addr);
    });
  }

  /** A connection to a paired device is up. */
  markConnected(id: PublicKey, connection: Omit<ConnectionInfo, 'since'> & { since?: number }): DeviceSnapshot {
    return this.#apply(id, 'connect', (x) => {
      x.connection = { ...connection, since: connection.since ?? Date.now() };
      x.lastSeen = Date.now();
    });
  }

  /** The last connection to a connected device went away. */
  markDisconnected(id: PublicKey): DeviceSnapshot {
    return this.#apply(id, 'disconnect', (x) => {
      x.connection = undefined;
      x.lastSeen = Date.now();
    });
  }

  /** Forget a paired device (written at once). */
  unpair(id: PublicKey): DeviceSnapshot {
    return this.#apply(id, 'unpair', (x) => {
      x.linkKey?.fill(0);
    });
  }

  /** A discovered device went silent. */
  expire(id: PublicKey): DeviceSnapshot {
    return this.#apply(id, 'expire', () => undefined);
  }

  /** New connection figures (path, RTT, bytes) of a connected device; no state change. */
  updateConnection(id: PublicKey, update: Partial<Omit<ConnectionInfo, 'since'>>): void {
    const e = this.#entry(id);
    if (e.state !== 'connected' || e.connection === undefined) return;
    e.connection = { ...e.connection, ...update };
    e.lastSeen = Date.now();
    e.snap = undefined;
    this.#events.emit('updated', { device: snapshot(e) });
  }

  /** A newer address for a known device. */
  updateAddr(addr: EndpointAddr): void {
    const e = this.#entry(addr.id);
    const bounded = boundAddr(addr);
    if (bounded.equals(e.addr)) return;
    e.addr = bounded;
    e.snap = undefined;
    if (PAIRED_STATES.includes(e.state)) this.#markDirty(false);
    this.#events.emit('updated', { device: snapshot(e) });
  }

  /** Newer info (name, version) a paired device told us about itself. */
  updateInfo(id: PublicKey, info: DeviceInfo): void {
    const e = this.#entry(id);
    const parsed = parseDeviceInfo(info);
    if (parsed === undefined) throw new DeviceRegistryError('ERR_INVALID_ARGUMENT', 'Device info is malformed');
    if (e.info !== undefined && e.info.deviceId !== parsed.deviceId) throw new DeviceRegistryError('ERR_INVALID_ARGUMENT', 'A device cannot change its device id');
    if (JSON.stringify(e.info) === JSON.stringify(parsed)) return;
    e.info = parsed;
    e.snap = undefined;
    if (PAIRED_STATES.includes(e.state)) this.#markDirty(false);
    this.#events.emit('updated', { device: snapshot(e) });
  }

  // ------------------------------------------------------------------ persistence

  #markDirty(now: boolean): void {
    if (this.path === undefined || this.#closed) return;
    this.#dirty = true;
    if (now) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#save();
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#save();
      }, REGISTRY_SAVE_DELAY_MS);
      this.#timer.unref?.();
    }
  }

  #serialize(): string {
    const devices: FileDevice[] = [...this.#entries.values()]
      .filter((e) => PAIRED_STATES.includes(e.state) && e.info !== undefined && e.linkKey !== undefined)
      .map((e) => ({
        endpointId: e.id.toString(),
        info: e.info!,
        pairedAt: e.pairedAt ?? 0,
        lastSeen: e.lastSeen ?? null,
        addr: { relayUrls: e.addr.relayUrls.map(String), directAddresses: e.addr.directAddresses.map(String) },
        linkKey: b64(e.linkKey!),
      }));
    const file: RegistryFile = { version: 1, generation: ++this.#generation, devices };
    return `${JSON.stringify(file, null, 2)}\n`;
  }

  /** Write now; concurrent calls share one write and a second one follows if changes came in. */
  #save(): Promise<void> {
    if (this.#writing) {
      this.#again = true;
      return this.#writing;
    }
    if (!this.#dirty || this.path === undefined) return Promise.resolve();
    const path = this.path;
    this.#writing = (async () => {
      do {
        this.#again = false;
        this.#dirty = false;
        try {
          await writeFileAtomic(path, this.#serialize(), 0o600);
        } catch (err) {
          this.#dirty = true;
          const problem: RegistryProblem = { code: 'ERR_REGISTRY_WRITE', message: `Cannot write the device registry ${path}: ${(err as Error).message}` };
          this.#problems.push(problem);
          this.#events.emit('problem', problem);
          break;
        }
      } while (this.#again && this.#dirty);
    })().finally(() => {
      this.#writing = undefined;
    });
    return this.#writing;
  }

  /** Wait until every change so far is on disk. */
  async flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#writing) await this.#writing;
    if (this.#dirty) await this.#save();
  }

  /** Flush and stop writing. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    this.#events.removeAll();
  }

  /** Never show link keys. */
  toJSON(): { path: string | undefined; devices: DeviceSnapshot[] } {
    return { path: this.path, devices: this.devices() };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `DeviceRegistry(${this.#entries.size} devices${this.path ? `, ${this.path}` : ''})`;
  }
}
