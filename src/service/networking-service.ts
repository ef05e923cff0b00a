/**
 * `NetworkingService`: one device on the network. It owns the identity, the endpoint, the
 * device registry, the protocol registry (and the router it builds) and the event loop, and
 * is what `Core.networking` is. Lifecycle: {@link NetworkingService.create} (identity,
 * registry, endpoint bound but accepting nothing, messaging and the modules' protocols
 * registered) → {@link start} (every ALPN set at once, accept, reconnect to paired devices,
 * modules started) → {@link shutdown} (Goodbye to connected devices, connections closed,
 * registry flushed, lock released).
 *
 * @module
 */
import { hkdfSync } from 'node:crypto';
import { join } from 'node:path';
import type { Connection } from '../endpoint/connection.ts';
import { Endpoint } from '../endpoint/endpoint.ts';
import type { QadOptions } from '../endpoint/qad.ts';
import type { EndpointAddr } from '../identity/endpoint-addr.ts';
import { PublicKey } from '../identity/keys.ts';
import type { NodeTlsOptions } from '../relay/client/node-transport.ts';
import type { Router } from '../protocols/router.ts';
import { MESSAGING_ALPN, type HelloBody, type JsonValue } from '../protocols/messaging/messages.ts';
import { MessagingProtocol, newId as newMessageId, type ExchangeOptions } from '../protocols/messaging/messaging.ts';
import { CloseCode } from '../protocols/codes.ts';
import type { ConnectionSettings } from '../transport/quic/config.ts';
import { ConnectionError } from '../transport/quic/connection/types.ts';
import { SdnetError } from '../util/errors.ts';
import { Emitter, type Listener, type ListenOptions } from '../util/emitter.ts';
import { linkedSignal } from '../util/abort.ts';
import { Logger, type LogLevel, type LogSink } from '../util/log.ts';
import { DeviceRegistry, DeviceRegistryError, type DeviceSnapshot, type DeviceStateChange, type RegistryProblem } from './device-registry.ts';
import type { DeviceRegistryView } from './device-registry-view.ts';
import { DeviceUnreachableError, NetworkingEventLoop, type ServiceTiming } from './event-loop.ts';
import { NetworkIdentity } from './identity.ts';
import { DataDirLock } from './lock.ts';
import { makeDir } from '../util/make-dir.ts';
import {
  ModuleUnavailableError,
  type ModuleContext,
  type ModuleFactories,
  type PairingInvite,
  type PairingModule,
  type PairingProgress,
  type PairingSessionStatus,
  type ServiceModule,
  type TransferModule,
  type TransferProgress,
  type TransferResult,
  type VouchResult,
} from './modules.ts';
import { ProtocolRegistry, type DeviceProtocol } from './protocol-registry.ts';

export interface NetworkingOptions {
  /** The device's data dir (created 0700 with its identity if new). */
  dataDir: string;
  /** Relays to choose a home relay from (none: LAN and direct addresses only). */
  relays?: readonly string[];
  /** UDP addresses to bind (default `0.0.0.0:0` and `[::]:0`; `[]`: relay only). */
  bind?: readonly string[];
  /** The device name, if the identity is created now (default: the host name). */
  name?: string;
  /** Where received files go (default `<dataDir>/downloads`). */
  downloadsDir?: string;
  /** Pairing, transfer, discovery. */
  modules?: ModuleFactories;
  /** Where log entries go (nothing is logged by default). */
  log?: LogSink;
  logLevel?: LogLevel;
  /** Health-check and reconnect timers (tests shorten them). */
  timing?: Partial<ServiceTiming>;
  relayTls?: NodeTlsOptions;
  relayToken?: string;
  /** QUIC settings. */
  settings?: Partial<ConnectionSettings>;
  /**
   * QUIC address discovery against the relays (iroh's QAD, UDP port 7842 by default): learn the
   * public address a NAT maps our socket to, so that peers behind other NATs can punch through
   * to it (ADD_ADDRESS, REACH_OUT, `addr()`). On by default when there are relays, as in iroh;
   * `false` turns it off.
   */
  qad?: boolean | QadOptions;
}

/** Events of the service (`core.networking.on(type, listener, { signal })`). */
export type NetworkingEvents = {
  /** Connected to the home relay. */
  online: { readonly relay: string };
  /** Lost the home relay (it reconnects by itself). */
  offline: { readonly relay: string | undefined };
  /** A device changed state (see the registry's transition table). */
  'device-state-changed': DeviceStateChange;
  /** A device's connection figures, address or info changed. */
  'device-updated': { readonly device: DeviceSnapshot };
  /** A paired device sent a message (already acknowledged). */
  'message-received': { readonly from: DeviceSnapshot; readonly messageId: string; readonly contentType: string; readonly payload: JsonValue };
  /** Pairing progress, from the pairing module. */
  'pairing-progress': PairingProgress;
  /** Transfer progress, from the transfer module. */
  'transfer-progress': TransferProgress;
  /** The registry file was corrupt (kept aside) or could not be written. */
  problem: RegistryProblem;
};

/** Answers a paired device's `request`. */
export type RequestHandler = (request: { readonly from: DeviceSnapshot; readonly payload: JsonValue; readonly signal: AbortSignal }) => JsonValue | Promise<JsonValue>;

/** What `status()` reports. */
export interface NetworkingStatus {
  readonly id: string;
  readonly deviceId: string;
  readonly name: string;
  readonly running: boolean;
  readonly online: boolean;
  readonly homeRelay: string | undefined;
  readonly addr: { readonly relayUrls: string[]; readonly directAddresses: string[] };
  readonly paired: number;
  readonly connected: number;
}

export class NetworkingService {
  readonly identity: NetworkIdentity;
  readonly dataDir: string;
  readonly downloadsDir: string;
  readonly endpoint: Endpoint;
  readonly protocols = new ProtocolRegistry();
  readonly #registry: DeviceRegistry;
  readonly #lock: DataDirLock;
  readonly #log: Logger;
  readonly #events = new Emitter<NetworkingEvents>();
  readonly #messaging: MessagingProtocol;
  readonly #loop: NetworkingEventLoop;
  readonly #modules: ServiceModule[] = [];
  readonly #relays: readonly string[];
  readonly #relayTls: NodeTlsOptions | undefined;
  #pairing: PairingModule | undefined;
  #transfer: TransferModule | undefined;
  #requestHandler: RequestHandler | undefined;
  #router: Router | undefined;
  #state: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  #shutdown: Promise<void> | undefined;

  private constructor(parts: { identity: NetworkIdentity; registry: DeviceRegistry; lock: DataDirLock; endpoint: Endpoint; log: Logger; downloadsDir: string; timing: Partial<ServiceTiming> | undefined; relays: readonly string[]; relayTls: NodeTlsOptions | undefined }) {
    this.identity = parts.identity;
    this.#relays = parts.relays;
    this.#relayTls = parts.relayTls;
    this.dataDir = parts.identity.dataDir;
    this.downloadsDir = parts.downloadsDir;
    this.#registry = parts.registry;
    this.#lock = parts.lock;
    this.endpoint = parts.endpoint;
    this.#log = parts.log;
    this.#messaging = new MessagingProtocol({
      hello: () => this.#hello(),
      onHello: (peer, hello) => void this.#loop.onHello(peer, hello).catch(() => undefined),
      onData: (peer, data) => {
        const from = this.#registry.get(peer);
        if (from === undefined) throw new SdnetError('ERR_DEVICE_UNKNOWN', 'Unknown device');
        this.#events.emit('message-received', { from, messageId: data.messageId, contentType: data.contentType, payload: data.payload });
      },
      onRequest: async (peer, payload, context) => {
        const from = this.#registry.get(peer);
        if (from === undefined) throw new SdnetError('ERR_DEVICE_UNKNOWN', 'Unknown device');
        if (this.#requestHandler === undefined) throw new SdnetError('ERR_NO_REQUEST_HANDLER', 'This device answers no requests');
        return this.#requestHandler({
          from,
          payload,
          get signal() {
            return context.signal;
          },
        });
      },
      onGoodbye: (peer, reason, connection) => this.#loop.onGoodbye(peer, reason, connection),
    });
    this.#loop = new NetworkingEventLoop({
      endpoint: this.endpoint,
      registry: this.#registry,
      protocols: this.protocols,
      messaging: this.#messaging,
      hello: () => this.#hello(),
      log: this.#log.child('loop'),
      ...(parts.timing ? { timing: parts.timing } : {}),
    });
    this.protocols.register(this.#messaging);
    this.#registry.on('state-changed', (e) => this.#events.emit('device-state-changed', e));
    this.#registry.on('updated', (e) => this.#events.emit('device-updated', e));
    this.#registry.on('problem', (e) => this.#events.emit('problem', e));
    this.endpoint.on('online', ({ relay }) => this.#events.emit('online', { relay: relay.toString() }));
    this.endpoint.on('offline', ({ relay }) => this.#events.emit('offline', { relay: relay?.toString() }));
  }

  /**
   * Load (or create) the device in `options.dataDir`, take its lock, open its registry and
   * bind its endpoint; nothing is accepted until {@link start}.
   *
   * @throws {ServiceLockedError} `ERR_SERVICE_RUNNING` when another process runs this data dir
   * @throws {IdentityError} / {@link KeyFileError} for a malformed identity
   */
  static async create(options: NetworkingOptions): Promise<NetworkingService> {
    const log = new Logger(options.log, 'service', options.logLevel ?? 'debug');
    const { identity } = await NetworkIdentity.init(options.dataDir, options.name !== undefined ? { name: options.name } : {});
    const lock = await DataDirLock.acquire(options.dataDir);
    let registry: DeviceRegistry | undefined;
    let endpoint: Endpoint | undefined;
    try {
      registry = await DeviceRegistry.open(options.dataDir);
      endpoint = await Endpoint.bind({
        secretKey: identity.secretKey,
        relays: options.relays ?? [],
        ...(options.bind ? { bindAddr: options.bind } : {}),
        ...(options.relayTls ? { relayTls: options.relayTls } : {}),
        ...(options.relayToken !== undefined ? { relayToken: options.relayToken } : {}),
        ...(options.settings ? { settings: options.settings } : {}),
        qad: options.qad ?? true,
        // From the identity: after a restart we can still reset the old connections, so
        // peers learn at once that we are gone (RFC 9000 §10.3).
        statelessResetKey: new Uint8Array(hkdfSync('sha256', identity.secretKey.toBytes(), new TextEncoder().encode('sdnet stateless reset'), new Uint8Array(0), 32)),
      });
      const downloadsDir = options.downloadsDir ?? join(options.dataDir, 'downloads');
      const service = new NetworkingService({ identity, registry, lock, endpoint, log, downloadsDir, timing: options.timing, relays: (options.relays ?? []).map(String), relayTls: options.relayTls });
      service.#installModules(options.modules ?? {});
      return service;
    } catch (err) {
      await endpoint?.close({ graceMs: 0 }).catch(() => undefined);
      await registry?.close().catch(() => undefined);
      await lock.release();
      throw err;
    }
  }

  #installModules(factories: ModuleFactories): void {
    const ctx = this.#moduleContext();
    if (factories.pairing) {
      this.#pairing = factories.pairing(ctx);
      this.#modules.push(this.#pairing);
    }
    if (factories.transfer) {
      this.#transfer = factories.transfer(ctx);
      this.#modules.push(this.#transfer);
    }
    for (const f of factories.others ?? []) this.#modules.push(f(ctx));
    for (const m of this.#modules) for (const p of m.protocols ?? []) this.protocols.register(p);
  }

  #moduleContext(): ModuleContext {
    const loop = this.#loop;
    return {
      identity: this.identity,
      endpoint: this.endpoint,
      registry: this.registry,
      dataDir: this.dataDir,
      downloadsDir: this.downloadsDir,
      relays: this.#relays,
      ...(this.#relayTls ? { relayTls: this.#relayTls } : {}),
      log: this.#log.child('module'),
      connect: (device, alpn, options) => this.connect(device, alpn, options),
      dial: async (addr, alpn, options = {}) => {
        const { signal, dispose } = linkedSignal([options.signal], options.timeoutMs ?? loop.timing.dialTimeoutMs);
        try {
          return await this.endpoint.connect(addr, alpn, { signal });
        } finally {
          dispose();
        }
      },
      commands: {
        startPairing: (id, addr) => loop.startPairing(id, addr),
        completePairing: (o) => loop.completePairing(o),
        failPairing: (id) => loop.failPairing(id),
        discovered: (addr, info) => loop.discovered(addr, info),
        expire: (id) => loop.expire(id),
      },
      pairingProgress: (p) => this.#events.emit('pairing-progress', p),
      transferProgress: (p) => this.#events.emit('transfer-progress', p),
    };
  }

  #hello(): HelloBody {
    const info = this.identity.info;
    const addr = this.endpoint.addr();
    return {
      device_id: info.deviceId,
      name: info.name,
      os: info.os,
      os_version: info.osVersion,
      kind: info.kind,
      app_version: info.appVersion,
      relay_urls: addr.relayUrls.map(String).slice(0, 8),
      direct_addresses: addr.directAddresses.map(String).slice(0, 32),
    };
  }

  /** Add a protocol (before {@link start}). */
  register(protocol: DeviceProtocol): void {
    this.protocols.register(protocol);
  }

  /**
   * Start: every ALPN registered at once and accepted from now on, reconnects to paired
   * devices, modules started.
   */
  async start(): Promise<void> {
    if (this.#state !== 'created') throw new SdnetError('ERR_SERVICE_STARTED', 'The service was already started');
    // An unusable downloads dir is said now, in one line (ERR_DIR_CREATE), not at the first file.
    await makeDir(this.downloadsDir, 0o700);
    this.#router = this.protocols.buildRouter(this.endpoint, {
      isPaired: (id) => this.#registry.isPaired(id),
      sink: (connection, registered) => this.#loop.adopt(connection, registered),
      onEvent: (e) => {
        if (e.type === 'refused') this.#log.info('refused a connection', { peer: e.remoteId?.fmtShort(), alpn: e.alpn, code: e.code, reason: e.reason });
        else if (e.type === 'handler-failed') this.#log.error('protocol handler failed', { peer: e.remoteId?.fmtShort(), alpn: e.alpn, error: String(e.error) });
      },
    });
    this.#state = 'running';
    for (const p of this.#registry.problems) this.#events.emit('problem', p);
    this.#loop.start();
    for (const m of this.#modules) await m.start?.();
  }

  get isRunning(): boolean {
    return this.#state === 'running';
  }

  /** The registry, read-only. */
  get registry(): DeviceRegistryView {
    return this.#registry;
  }

  /** The event loop's live connections (status, tests). */
  connections(device?: PublicKey | string): { endpointId: string; alpn: string; side: 'client' | 'server'; connection: Connection }[] {
    return this.#loop.connections(device);
  }

  on<K extends keyof NetworkingEvents>(type: K, listener: Listener<NetworkingEvents[K]>, options: ListenOptions = {}): () => void {
    return this.#events.on(type, listener, options);
  }

  next<K extends keyof NetworkingEvents>(type: K, options: ListenOptions & { filter?: (event: NetworkingEvents[K]) => boolean } = {}): Promise<NetworkingEvents[K]> {
    return this.#events.next(type, options);
  }

  /** Every known device. */
  devices(): DeviceSnapshot[] {
    return this.#registry.devices();
  }

  /** What the user typed (name, device id, EndpointId or prefix) as a known device. */
  device(query: string | PublicKey): DeviceSnapshot {
    if (query instanceof PublicKey) {
      const d = this.#registry.get(query);
      if (d === undefined) throw new DeviceRegistryError('ERR_DEVICE_UNKNOWN', `No known device is ${query.fmtShort()}`);
      return d;
    }
    return this.#registry.resolve(query);
  }

  #paired(query: string | PublicKey): PublicKey {
    const id = this.#registry.idOf(query);
    if (!this.#registry.isPaired(id)) {
      const d = this.#registry.get(id);
      throw new DeviceRegistryError('ERR_DEVICE_UNKNOWN', `${d?.name ?? id.fmtShort()} is not paired`);
    }
    return id;
  }

  /** The connection to a paired device on `alpn` (the live one, or a dial). */
  connect(device: string | PublicKey, alpn: string, options: { signal?: AbortSignal } = {}): Promise<Connection> {
    this.#assertRunning();
    return this.#loop.connect(this.#paired(device), alpn, options);
  }

  #assertRunning(): void {
    if (this.#state !== 'running') throw new SdnetError('ERR_SERVICE_STOPPED', this.#state === 'created' ? 'The service is not started' : 'The service is shut down');
  }

  /** Run `exchange` on the messaging connection to `device`; a connection lost under it is `ERR_DEVICE_UNREACHABLE`. */
  async #withMessaging<T>(device: string | PublicKey, signal: AbortSignal | undefined, exchange: (conn: Connection) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const conn = await this.connect(device, MESSAGING_ALPN, signal ? { signal } : {});
      try {
        return await exchange(conn);
      } catch (err) {
        // Both sides dialled at once and the duplicate rule closed the connection this exchange
        // was on (SUPERSEDED, either side's decision): the twin that was kept carries it, once.
        if (err instanceof ConnectionError && err.applicationCode === CloseCode.SUPERSEDED && attempt === 0) continue;
        if (err instanceof ConnectionError) throw DeviceUnreachableError.closed(this.#label(conn.remoteId), err);
        throw err;
      }
    }
  }

  #label(id: PublicKey): string {
    const d = this.#registry.get(id);
    return d?.name !== undefined ? `${d.name} (${id.fmtShort()})` : id.fmtShort();
  }

  /**
   * Send a message to a paired device; resolves once it acknowledged it.
   *
   * @throws {DeviceRegistryError} `ERR_DEVICE_UNKNOWN`; {@link DeviceUnreachableError}; {@link MessagingError}
   */
  async sendMessage(device: string | PublicKey, payload: JsonValue, options: ExchangeOptions & { contentType?: string } = {}): Promise<{ messageId: string; rttMs: number }> {
    // One id for the message, whichever connection finally carries it.
    const messageId = newMessageId();
    return this.#withMessaging(device, options.signal, (conn) => this.#messaging.send(conn, payload, { ...options, messageId }));
  }

  /** Send a request to a paired device and resolve with its response. */
  async request(device: string | PublicKey, payload: JsonValue, options: ExchangeOptions = {}): Promise<JsonValue> {
    return this.#withMessaging(device, options.signal, (conn) => this.#messaging.request(conn, payload, options));
  }

  /** Ping a paired device; resolves with the round trip (ms). */
  async ping(device: string | PublicKey, options: ExchangeOptions = {}): Promise<number> {
    return this.#withMessaging(device, options.signal, (conn) => this.#messaging.ping(conn, options));
  }

  /** Answer paired devices' requests with `handler` (replaces the previous one). */
  onRequest(handler: RequestHandler | undefined): void {
    this.#requestHandler = handler;
  }

  /**
   * Forget a paired device: removed from the registry (on disk before this resolves), its
   * connections closed with `UNPAIRED`; it can no longer reach our protocols.
   */
  async unpair(device: string | PublicKey): Promise<DeviceSnapshot> {
    const id = this.#paired(device);
    return this.#loop.unpair(id);
  }

  /** Close the connections to a device and stop dialling it until it reaches us again. */
  async disconnect(device: string | PublicKey): Promise<void> {
    await this.#loop.disconnect(this.#paired(device));
  }

  /**
   * Start pairing as the initiator (shows a code, waits for a joiner).
   *
   * @throws {ModuleUnavailableError} `ERR_PAIRING_UNAVAILABLE` without a pairing module
   */
  async startPairingAsInitiator(options: { signal?: AbortSignal; [k: string]: unknown } = {}): Promise<PairingInvite> {
    this.#assertRunning();
    if (this.#pairing === undefined) throw new ModuleUnavailableError('ERR_PAIRING_UNAVAILABLE', 'Pairing is not available in this build');
    return this.#pairing.startAsInitiator(options);
  }

  /**
   * Join a pairing with the code another device shows.
   *
   * @throws {ModuleUnavailableError} `ERR_PAIRING_UNAVAILABLE` without a pairing module
   */
  async startPairingAsJoiner(code: string, options: { signal?: AbortSignal; nodeId?: string; [k: string]: unknown } = {}): Promise<DeviceSnapshot> {
    this.#assertRunning();
    if (this.#pairing === undefined) throw new ModuleUnavailableError('ERR_PAIRING_UNAVAILABLE', 'Pairing is not available in this build');
    return this.#pairing.startAsJoiner(code, options);
  }

  #pairingModule(): PairingModule {
    this.#assertRunning();
    if (this.#pairing === undefined) throw new ModuleUnavailableError('ERR_PAIRING_UNAVAILABLE', 'Pairing is not available in this build');
    return this.#pairing;
  }

  /** The pairing sessions, current and recently finished (`pair.status`). */
  pairingStatus(): PairingSessionStatus[] {
    return this.#pairingModule().status?.() ?? [];
  }

  /** Cancel a pairing session (its code is withdrawn everywhere); false if there is none. */
  cancelPairing(sessionId: string): boolean {
    return this.#pairingModule().cancel?.(sessionId) ?? false;
  }

  /**
   * Introduce paired device `vouchee` to paired devices `targets` (proxy pairing): each target
   * confirms (unless it auto-accepts) and the two then hold each other as paired.
   */
  async vouch(vouchee: string | PublicKey, targets: readonly (string | PublicKey)[], options: { signal?: AbortSignal } = {}): Promise<VouchResult[]> {
    const m = this.#pairingModule();
    if (m.vouch === undefined) throw new ModuleUnavailableError('ERR_PAIRING_UNAVAILABLE', 'Vouching is not available in this build');
    const v = this.device(this.#paired(vouchee));
    return m.vouch(v, targets.map((t) => this.device(this.#paired(t))), options);
  }

  /** Accept or refuse an introduction waiting for this device's confirmation. */
  confirmVouch(introductionId: string, accept: boolean): boolean {
    return this.#pairingModule().confirmVouch?.(introductionId, accept) ?? false;
  }

  /** The transfer module (list, pause, resume, cancel), if one is installed. */
  get transfer(): TransferModule | undefined {
    return this.#transfer;
  }

  /**
   * Send files and directories to a paired device.
   *
   * @throws {ModuleUnavailableError} `ERR_TRANSFER_UNAVAILABLE` without a transfer module
   */
  async shareWithDevice(device: string | PublicKey, paths: readonly string[], options: { signal?: AbortSignal; [k: string]: unknown } = {}): Promise<TransferResult> {
    this.#assertRunning();
    if (this.#transfer === undefined) throw new ModuleUnavailableError('ERR_TRANSFER_UNAVAILABLE', 'File transfer is not available in this build');
    return this.#transfer.share(this.device(this.#paired(device)), paths, options);
  }

  /** Who we are and how we are connected. */
  status(): NetworkingStatus {
    const addr = this.endpoint.addr();
    const devices = this.#registry.devices();
    return {
      id: this.identity.endpointId.toString(),
      deviceId: this.identity.deviceId,
      name: this.identity.name,
      running: this.#state === 'running',
      online: this.endpoint.isOnline,
      homeRelay: this.endpoint.homeRelay?.toString(),
      addr: { relayUrls: addr.relayUrls.map(String), directAddresses: addr.directAddresses.map(String) },
      paired: devices.filter((d) => this.#registry.isPaired(d.endpointId)).length,
      connected: devices.filter((d) => d.state === 'connected').length,
    };
  }

  /** Our address (id, home relay, direct addresses). */
  addr(): EndpointAddr {
    return this.endpoint.addr();
  }

  /**
   * Stop: modules, Goodbye to connected devices, connections closed, the router and the
   * endpoint closed, the registry flushed, the lock released. Safe to call twice.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      this.#state = 'stopping';
      for (const m of [...this.#modules].reverse()) {
        try {
          await m.shutdown?.();
        } catch (err) {
          this.#log.error('module shutdown failed', { error: String(err) });
        }
      }
      await this.#loop.shutdown();
      if (this.#router) await this.#router.shutdown();
      else await this.endpoint.close({ graceMs: 200 });
      await this.#registry.close();
      await this.#lock.release();
      this.#state = 'stopped';
      this.#events.removeAll();
    })();
    return this.#shutdown;
  }
}

export { DeviceUnreachableError };
