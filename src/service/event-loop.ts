/**
 * `NetworkingEventLoop`: the one owner of registry mutations and of the connection table.
 *
 * - **Command queue.** Everything that changes the registry (a connection up or down, a
 *   pairing completed, a device unpaired, discovered, expired) is a command run in order,
 *   one at a time; nothing else writes the registry. Long work (dials, message exchanges)
 *   runs outside the queue and comes back as commands.
 * - **One connection per (device, ALPN).** A connection, the peer's or ours, is tracked under
 *   its device and ALPN and reused by every sender. When a second one appears: if the two
 *   came up within {@link ServiceTiming.raceWindowMs} from opposite sides it is a
 *   simultaneous dial and both devices keep the one dialled by the lower EndpointId (the
 *   same rule on both ends, so they agree); otherwise the newer replaces the older (the peer
 *   dialled again because it lost the old one, e.g. it restarted). The loser is closed with
 *   {@link CloseCode.SUPERSEDED}.
 * - **Reconnects**, from whichever side notices first: on start for every paired device,
 *   and whenever a device's last connection goes; jittered exponential backoff; an inbound
 *   connection cancels the wait. (Spacedrive only let the lower id dial, and skipped devices
 *   left in `Paired`, spacedrive-net.md §5.3.)
 * - **Health check** per connected device: a messaging Ping every interval; misses in a row
 *   close the connection as lost (Spacedrive wrote one and never started it).
 *
 * @module
 */
import type { Connection } from '../endpoint/connection.ts';
import type { Endpoint } from '../endpoint/endpoint.ts';
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import { PublicKey } from '../identity/keys.ts';
import { CloseCode, closeCodeName } from '../protocols/codes.ts';
import type { ConnectionError } from '../transport/quic/connection/types.ts';
import { MESSAGING_ALPN, type HelloBody } from '../protocols/messaging/messages.ts';
import type { MessagingProtocol } from '../protocols/messaging/messaging.ts';
import { SdnetError } from '../util/errors.ts';
import { linkedSignal } from '../util/abort.ts';
import type { Logger } from '../util/log.ts';
import { DeviceRegistryError, type DeviceRegistry, type DeviceSnapshot } from './device-registry.ts';
import { parseDeviceInfo, type DeviceInfo } from './identity.ts';
import {
  DIAL_RACE_WINDOW_MS,
  DIAL_TIMEOUT_MS,
  HEALTH_INTERVAL_MS,
  HEALTH_MAX_MISSES,
  HEALTH_TIMEOUT_MS,
  MAX_QUEUED_COMMANDS,
  RECONNECT_FACTOR,
  RECONNECT_JITTER,
  RECONNECT_MAX_MS,
  RECONNECT_MIN_MS,
} from './limits.ts';
import { ProtocolRegistry, type ConnectionContext, type RegisteredProtocol } from './protocol-registry.ts';

/** Timers of the loop (defaults in limits.ts; tests shorten them). */
export interface ServiceTiming {
  healthIntervalMs: number;
  healthTimeoutMs: number;
  healthMaxMisses: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  dialTimeoutMs: number;
  raceWindowMs: number;
}

export const DEFAULT_TIMING: ServiceTiming = {
  healthIntervalMs: HEALTH_INTERVAL_MS,
  healthTimeoutMs: HEALTH_TIMEOUT_MS,
  healthMaxMisses: HEALTH_MAX_MISSES,
  reconnectMinMs: RECONNECT_MIN_MS,
  reconnectMaxMs: RECONNECT_MAX_MS,
  dialTimeoutMs: DIAL_TIMEOUT_MS,
  raceWindowMs: DIAL_RACE_WINDOW_MS,
};

/** A device cannot be reached now. */
export class DeviceUnreachableError extends SdnetError {
  /** The application close code, when the peer closed the connection (e.g. `CloseCode.NOT_PAIRED`). */
  readonly closeCode: number | undefined;
  constructor(message: string, options?: { cause?: unknown; closeCode?: number }) {
    super('ERR_DEVICE_UNREACHABLE', message, options);
    this.name = 'DeviceUnreachableError';
    this.closeCode = options?.closeCode;
  }

  /** The error for a connection to `who` that closed under an exchange. */
  static closed(who: string, error: ConnectionError): DeviceUnreachableError {
    const why = error.kind === 'application' ? `${error.remote ? 'it closed the connection' : 'the connection was closed'}: ${closeCodeName(error.applicationCode)}${error.reason ? ` (${error.reason})` : ''}` : error.message;
    return new DeviceUnreachableError(`Cannot reach ${who}: ${why}`, { cause: error, ...(error.applicationCode !== undefined ? { closeCode: error.applicationCode } : {}) });
  }
}

interface Tracked {
  readonly connection: Connection;
  readonly alpn: string;
  readonly side: 'client' | 'server';
  readonly openedAt: number;
  readonly stop: AbortController;
}

interface Health {
  timer: ReturnType<typeof setTimeout> | undefined;
  misses: number;
  running: boolean;
}

/** A dial in progress to one paired device on one ALPN (shared by concurrent callers). */
interface PendingDial {
  promise: Promise<Connection>;
  /** Start another attempt to whatever part of `addr` no attempt has tried yet. */
  addAddr(addr: EndpointAddr | undefined): void;
}

/** One dial tries at most this many distinct addresses (direct and relay) however often new ones are learnt. */
const MAX_DIAL_ADDRESSES = 16;

interface Reconnect {
  attempt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** A reconnect dial is awaited: another trigger meanwhile joins it rather than count a second failure. */
  running?: boolean;
  /** Backoff ceiling for this device (longer after the peer refused us as not paired). */
  ceilingMs: number;
}

export interface EventLoopDeps {
  readonly endpoint: Endpoint;
  readonly registry: DeviceRegistry;
  readonly protocols: ProtocolRegistry;
  readonly messaging: MessagingProtocol;
  readonly hello: () => HelloBody;
  readonly log: Logger;
  readonly timing?: Partial<ServiceTiming>;
}

export class NetworkingEventLoop {
  readonly #endpoint: Endpoint;
  readonly #registry: DeviceRegistry;
  readonly #protocols: ProtocolRegistry;
  readonly #messaging: MessagingProtocol;
  readonly #hello: () => HelloBody;
  readonly #log: Logger;
  readonly timing: ServiceTiming;
  readonly #table = new Map<string, Map<string, Tracked>>();
  readonly #dials = new Map<string, PendingDial>();
  readonly #health = new Map<string, Health>();
  readonly #reconnects = new Map<string, Reconnect>();
  /** Devices whose reconnects the user paused (`disconnect`). */
  readonly #paused = new Set<string>();
  readonly #queue: { run: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  readonly #serving = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  #pumping = false;
  #started = false;
  #stopping = false;

  constructor(deps: EventLoopDeps) {
    this.#endpoint = deps.endpoint;
    this.#registry = deps.registry;
    this.#protocols = deps.protocols;
    this.#messaging = deps.messaging;
    this.#hello = deps.hello;
    this.#log = deps.log;
    this.timing = { ...DEFAULT_TIMING, ...deps.timing };
  }

  // ------------------------------------------------------------------ the queue

  /**
   * Run `fn` on the loop, after every command queued before it; resolves with its result.
   * Registry mutations happen only inside such commands.
   */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.#queue.length >= MAX_QUEUED_COMMANDS) return Promise.reject(new SdnetError('ERR_SERVICE_BUSY', 'The service has too many commands queued'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run: fn, resolve: resolve as (v: unknown) => void, reject });
      void this.#pump();
    });
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (let c = this.#queue.shift(); c !== undefined; c = this.#queue.shift()) {
        try {
          c.resolve(await c.run());
        } catch (err) {
          c.reject(err);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  // ------------------------------------------------------------------ lifecycle

  /** Start reconnecting to every paired device. */
  start(): void {
    this.#started = true;
    for (const id of this.#registry.pairedIds()) this.#scheduleReconnect(id.toString(), 0);
  }

  /** Live connections by device (for status and tests). */
  connections(id?: PublicKey | string): { endpointId: string; alpn: string; side: 'client' | 'server'; connection: Connection }[] {
    const out: { endpointId: string; alpn: string; side: 'client' | 'server'; connection: Connection }[] = [];
    for (const [key, byAlpn] of this.#table) {
      if (id !== undefined && key !== id.toString()) continue;
      for (const t of byAlpn.values()) out.push({ endpointId: key, alpn: t.alpn, side: t.side, connection: t.connection });
    }
    return out;
  }

  /**
   * Say goodbye to every connected device, close every connection, stop the timers; the
   * devices end `disconnected` in the registry.
   */
  async shutdown(reason = 'shutting down'): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const r of this.#reconnects.values()) if (r.timer) clearTimeout(r.timer);
    this.#reconnects.clear();
    for (const h of this.#health.values()) if (h.timer) clearTimeout(h.timer);
    this.#health.clear();
    // Goodbye on each messaging connection, in parallel, each bounded (a dead peer must not hold us).
    await Promise.allSettled(
      [...this.#table.values()].flatMap((m) => {
        const t = m.get(MESSAGING_ALPN);
        return t && !t.connection.isClosed ? [this.#messaging.goodbye(t.connection, reason, { timeoutMs: 500 })] : [];
      }),
    );
    const closing: Promise<unknown>[] = [];
    for (const byAlpn of this.#table.values()) {
      for (const t of byAlpn.values()) {
        t.connection.close(CloseCode.SHUTDOWN, reason);
        closing.push(t.connection.closed);
      }
    }
    await Promise.allSettled(closing);
    this.#stop.abort();
    // Let the close commands run (devices → disconnected, last seen written).
    await this.run(() => undefined);
    await Promise.allSettled([...this.#serving]);
  }

  // ------------------------------------------------------------------ connections

  /**
   * Take over a connection the router admitted (`side` 'server') or one we dialled
   * ('client'): track it under its device and ALPN (or let the tie-break close it), serve
   * the streams the peer opens on it, and resolve once it is closed. Connections of unpaired
   * peers (the pairing protocol) are served but not tracked.
   */
  adopt(connection: Connection, registered: RegisteredProtocol): Promise<void> {
    const task = this.#adopt(connection, registered);
    this.#serving.add(task);
    void task.finally(() => this.#serving.delete(task));
    return task;
  }

  async #adopt(connection: Connection, registered: RegisteredProtocol): Promise<void> {
    const tracked = await this.run(() => this.#track(connection, registered));
    // Unpaired between the handshake gate and now: not served.
    if (tracked === 'refused') return;
    const stop = tracked?.stop ?? new AbortController();
    const onStop = (): void => stop.abort();
    this.#stop.signal.addEventListener('abort', onStop, { once: true });
    void connection.closed.then(() => stop.abort());
    const ctx: ConnectionContext = {
      connection,
      remoteId: connection.remoteId,
      alpn: registered.alpn,
      side: connection.side,
      limits: registered.limits,
      signal: stop.signal,
      log: this.#log,
    };
    try {
      registered.protocol.connectionOpened?.(ctx);
    } catch (err) {
      this.#log.error('connectionOpened failed', { alpn: registered.alpn, error: String(err) });
    }
    try {
      await ProtocolRegistry.serve(registered, ctx);
    } finally {
      this.#stop.signal.removeEventListener('abort', onStop);
    }
  }

  /** (On the loop.) Put a new connection in the table, settling a duplicate. */
  #track(connection: Connection, registered: RegisteredProtocol): Tracked | undefined | 'refused' {
    const alpn = registered.alpn;
    const id = connection.remoteId;
    const key = id.toString();
    if (connection.isClosed) return undefined;
    if (!this.#registry.isPaired(id)) {
      // Pairing peers are served, not tracked; anyone else was unpaired since the router's gate.
      if (registered.allowUnpaired) return undefined;
      connection.close(CloseCode.NOT_PAIRED, 'not paired');
      return 'refused';
    }
    if (this.#stopping) {
      connection.close(CloseCode.SHUTDOWN, 'shutting down');
      return undefined;
    }
    const now = performance.now();
    const mine: Tracked = { connection, alpn, side: connection.side, openedAt: now, stop: new AbortController() };
    let byAlpn = this.#table.get(key);
    if (byAlpn === undefined) {
      byAlpn = new Map();
      this.#table.set(key, byAlpn);
    }
    const existing = byAlpn.get(alpn);
    if (existing !== undefined && !existing.connection.isClosed) {
      const verdict = settleDuplicate({ side: existing.side, openedAt: existing.openedAt }, { side: mine.side, openedAt: now }, compareIds(this.#endpoint.id, id) < 0, this.timing.raceWindowMs);
      const keep = verdict === 'new' ? mine : existing;
      const drop = keep === mine ? existing : mine;
      this.#log.debug('duplicate connection settled', { peer: id.fmtShort(), alpn, kept: keep.side, dropped: drop.side });
      drop.connection.close(CloseCode.SUPERSEDED, 'superseded by another connection');
      if (keep === existing) return undefined;
    }
    byAlpn.set(alpn, mine);
    void connection.closed.then((error) => this.run(() => this.#untrack(key, mine, error.applicationCode))).catch((err: unknown) => this.#log.error('untrack failed', { error: String(err) }));
    connection.on('path-changed', ({ relayed }) => void this.run(() => this.#refresh(key, { path: relayed ? 'relay' : 'direct' })).catch(() => undefined));
    // The device is reachable: no more waiting to dial it.
    this.#cancelReconnect(key);
    this.#paused.delete(key);
    const state = this.#registry.state(id);
    if (state === 'paired' || state === 'disconnected') {
      const stats = connection.stats();
      this.#registry.markConnected(id, { path: stats.relayed ? 'relay' : 'direct', rttMs: round(stats.rtt), bytesSent: stats.bytesSent, bytesReceived: stats.bytesReceived });
    }
    if (alpn === MESSAGING_ALPN) this.#startHealth(key);
    return mine;
  }

  /** (On the loop.) A tracked connection closed. */
  #untrack(key: string, tracked: Tracked, applicationCode: number | undefined): void {
    tracked.stop.abort();
    const byAlpn = this.#table.get(key);
    if (byAlpn?.get(tracked.alpn) === tracked) byAlpn.delete(tracked.alpn);
    if (byAlpn !== undefined && byAlpn.size > 0) return;
    this.#table.delete(key);
    this.#stopHealth(key);
    if (this.#registry.state(key) === 'connected') this.#registry.markDisconnected(PublicKey.fromString(key));
    if (!this.#stopping && this.#registry.isPaired(key) && !this.#paused.has(key)) {
      // A peer that refused us as not paired is asked again rarely.
      if (applicationCode === CloseCode.NOT_PAIRED) this.#reconnectState(key).ceilingMs = 60_000;
      this.#scheduleReconnect(key);
    }
  }

  /** (On the loop.) New connection figures for a connected device. */
  #refresh(key: string, update: { path?: 'direct' | 'relay'; rttMs?: number }): void {
    if (this.#registry.state(key) !== 'connected') return;
    let sent = 0;
    let received = 0;
    for (const t of this.#table.get(key)?.values() ?? []) {
      const s = t.connection.stats();
      sent += s.bytesSent;
      received += s.bytesReceived;
    }
    this.#registry.updateConnection(PublicKey.fromString(key), { ...update, bytesSent: sent, bytesReceived: received });
  }

  /**
   * The connection to paired device `id` on `alpn`: the live one, or a dial to its last
   * known address (concurrent callers share the dial).
   *
   * @throws {DeviceRegistryError} `ERR_DEVICE_UNKNOWN` when `id` is not paired
   * @throws {DeviceUnreachableError} when the dial fails
   */
  async connect(id: PublicKey, alpn: string, options: { signal?: AbortSignal } = {}): Promise<Connection> {
    const key = id.toString();
    const live = this.#table.get(key)?.get(alpn);
    if (live !== undefined && !live.connection.isClosed) return live.connection;
    if (!this.#registry.isPaired(id)) throw new DeviceRegistryError('ERR_DEVICE_UNKNOWN', `Device ${id.fmtShort()} is not paired`);
    if (this.#stopping) throw new SdnetError('ERR_SERVICE_STOPPED', 'The service is shutting down');
    const registered = this.#protocols.get(alpn);
    if (registered === undefined) throw new SdnetError('ERR_PROTOCOL_UNKNOWN', `No protocol ${alpn} is registered`);
    const dialKey = `${key}|${alpn}`;
    let pending = this.#dials.get(dialKey);
    if (pending === undefined) {
      const started = this.#dial(id, registered);
      const ended = started.promise.finally(() => this.#dials.delete(dialKey));
      pending = { promise: ended, addAddr: started.addAddr };
      this.#dials.set(dialKey, pending);
    } else {
      // A dial is under way, perhaps to an address that went stale (a restart on a new port);
      // an address learnt since (mDNS, a hello) gets its own attempt beside it at once.
      pending.addAddr(this.#registry.addr(id));
    }
    const dial = pending.promise;
    if (options.signal === undefined) return dial;
    const signal = options.signal;
    signal.throwIfAborted();
    return new Promise<Connection>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      dial.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * Dial paired device `id`: one attempt to its registry address now, one more for each new
   * address learnt while the dial is pending ({@link PendingDial.addAddr}); the first to
   * connect wins and the rest are abandoned; the dial fails when every attempt has.
   */
  #dial(id: PublicKey, registered: RegisteredProtocol): PendingDial {
    const tried = new Set<string>();
    const attempts = new Set<AbortController>();
    let done = false;
    let running = 0;
    let settle!: { resolve: (c: Connection) => void; reject: (e: unknown) => void };
    const result = new Promise<Connection>((resolve, reject) => (settle = { resolve, reject }));
    const launch = (addr: EndpointAddr): void => {
      const stop = new AbortController();
      attempts.add(stop);
      running++;
      const { signal, dispose } = linkedSignal([this.#stop.signal, stop.signal], this.timing.dialTimeoutMs, () => new DeviceUnreachableError(`Dial to ${id.fmtShort()} timed out after ${this.timing.dialTimeoutMs} ms`));
      this.#endpoint.connect(addr, registered.alpn, { signal }).then(
        (connection) => {
          dispose();
          attempts.delete(stop);
          running--;
          if (done) {
            connection.close(CloseCode.SUPERSEDED, 'another dial attempt won');
            return;
          }
          done = true;
          for (const other of attempts) other.abort();
          settle.resolve(connection);
        },
        (err: unknown) => {
          dispose();
          attempts.delete(stop);
          running--;
          if (!done && running === 0) {
            done = true;
            settle.reject(err instanceof DeviceUnreachableError ? err : new DeviceUnreachableError(`Cannot reach ${id.fmtShort()}: ${(err as Error).message}`, { cause: err }));
          }
        },
      );
    };
    /** The parts of `addr` no attempt has tried yet, marked tried; undefined when none. */
    const fresh = (addr: EndpointAddr | undefined): EndpointAddr | undefined => {
      if (addr === undefined) return undefined;
      const direct = addr.directAddresses.filter((a) => !tried.has(`d ${a.toString()}`));
      const relays = addr.relayUrls.filter((u) => !tried.has(`r ${u.toString()}`));
      if (direct.length === 0 && relays.length === 0) return undefined;
      for (const a of direct) tried.add(`d ${a.toString()}`);
      for (const u of relays) tried.add(`r ${u.toString()}`);
      return EndpointAddr.from({ id, directAddresses: direct, relayUrls: relays });
    };
    const addAddr = (addr: EndpointAddr | undefined): void => {
      if (done || tried.size >= MAX_DIAL_ADDRESSES) return;
      const next = fresh(addr);
      if (next !== undefined) launch(next);
    };
    const addr = this.#registry.addr(id) ?? EndpointAddr.from({ id });
    if (addr.isEmpty) return { promise: Promise.reject(new DeviceUnreachableError(`No address is known for ${id.fmtShort()} (it has to reach us first, or be discovered)`)), addAddr: () => undefined };
    addAddr(addr);
    return { promise: result.then((connection) => this.#afterDial(id, registered, connection)), addAddr };
  }

  async #afterDial(id: PublicKey, registered: RegisteredProtocol, connection: Connection): Promise<Connection> {
    void this.adopt(connection, registered);
    // The tie-break may keep an inbound connection instead of ours: hand out the winner.
    await this.run(() => undefined);
    if (registered.alpn === MESSAGING_ALPN && !connection.isClosed) void this.#exchangeHello(connection);
    const winner = this.#table.get(id.toString())?.get(registered.alpn);
    if (winner !== undefined && !winner.connection.isClosed) return winner.connection;
    if (!connection.isClosed) return connection;
    throw DeviceUnreachableError.closed(id.fmtShort(), await connection.closed);
  }

  /** Tell a peer we dialled who and where we are; learn the same about it. */
  async #exchangeHello(connection: Connection): Promise<void> {
    try {
      const theirs = await this.#messaging.hello(connection, this.#hello(), { timeoutMs: this.timing.dialTimeoutMs });
      await this.onHello(connection.remoteId, theirs);
    } catch (err) {
      this.#log.debug('hello failed', { peer: connection.remoteId.fmtShort(), error: String(err) });
    }
  }

  /** A peer said who and where it is: refresh its info and address. */
  onHello(peer: PublicKey, hello: HelloBody): Promise<void> {
    return this.run(() => {
      if (!this.#registry.isPaired(peer)) return;
      const info = parseDeviceInfo({ deviceId: hello.device_id, name: hello.name, os: hello.os, osVersion: hello.os_version, kind: hello.kind, appVersion: hello.app_version });
      if (info !== undefined && this.#registry.get(peer)?.deviceId === info.deviceId) this.#registry.updateInfo(peer, info);
      let addr: EndpointAddr | undefined;
      try {
        addr = EndpointAddr.from({ id: peer, relayUrls: hello.relay_urls, directAddresses: hello.direct_addresses });
      } catch {
        addr = undefined;
      }
      if (addr !== undefined && !addr.isEmpty) this.#registry.updateAddr(addr);
    });
  }

  /** A peer said goodbye on `connection`: close it now rather than wait for the health check. */
  onGoodbye(peer: PublicKey, reason: string, connection: Connection): void {
    this.#log.info('peer said goodbye', { peer: peer.fmtShort(), reason });
    connection.close(CloseCode.NORMAL, 'goodbye');
  }

  // ------------------------------------------------------------------ reconnects

  #reconnectState(key: string): Reconnect {
    let r = this.#reconnects.get(key);
    if (r === undefined) {
      r = { attempt: 0, timer: undefined, ceilingMs: this.timing.reconnectMaxMs };
      this.#reconnects.set(key, r);
    }
    return r;
  }

  #cancelReconnect(key: string): void {
    const r = this.#reconnects.get(key);
    if (r?.timer) clearTimeout(r.timer);
    this.#reconnects.delete(key);
  }

  /** Dial `key` after the next backoff delay (or `delayMs`). */
  #scheduleReconnect(key: string, delayMs?: number): void {
    if (this.#stopping || !this.#started) return;
    const r = this.#reconnectState(key);
    if (r.timer) return;
    const base = Math.min(r.ceilingMs, this.timing.reconnectMinMs * RECONNECT_FACTOR ** r.attempt);
    const jitter = 1 + (Math.random() * 2 - 1) * RECONNECT_JITTER;
    const delay = delayMs ?? base * jitter;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      void this.#reconnect(key);
    }, Math.max(0, delay));
    r.timer.unref?.();
  }

  async #reconnect(key: string): Promise<void> {
    if (this.#stopping || !this.#registry.isPaired(key) || this.#paused.has(key)) return;
    if ((this.#table.get(key)?.size ?? 0) > 0) return this.#cancelReconnect(key);
    const r = this.#reconnectState(key);
    if (r.running === true) {
      // Its dial is pending: whatever address was learnt since gets an attempt of its own.
      this.#dials.get(`${key}|${MESSAGING_ALPN}`)?.addAddr(this.#registry.addr(PublicKey.fromString(key)));
      return;
    }
    r.running = true;
    try {
      await this.connect(PublicKey.fromString(key), MESSAGING_ALPN);
      r.running = false;
      this.#cancelReconnect(key);
    } catch (err) {
      r.running = false;
      r.attempt++;
      this.#log.debug('reconnect failed', { peer: key.slice(0, 10), attempt: r.attempt, error: String((err as Error).message) });
      if (!(err instanceof DeviceUnreachableError && /No address is known/.test(err.message))) this.#scheduleReconnect(key);
      else this.#reconnects.delete(key);
    }
  }

  /** Stop dialling a device until it connects to us or {@link resume} (the user said disconnect). */
  async disconnect(id: PublicKey): Promise<void> {
    const key = id.toString();
    this.#paused.add(key);
    this.#cancelReconnect(key);
    const closing = [...(this.#table.get(key)?.values() ?? [])].map((t) => {
      t.connection.close(CloseCode.NORMAL, 'disconnect');
      return t.connection.closed;
    });
    await Promise.allSettled(closing);
    await this.run(() => undefined);
  }

  /** Dial a device again (after {@link disconnect}, or when an address became known). */
  resume(id: PublicKey): void {
    const key = id.toString();
    this.#paused.delete(key);
    if ((this.#table.get(key)?.size ?? 0) === 0 && this.#registry.isPaired(key)) this.#scheduleReconnect(key, 0);
  }

  // ------------------------------------------------------------------ health

  #startHealth(key: string): void {
    if (this.#health.has(key)) return;
    const h: Health = { timer: undefined, misses: 0, running: false };
    this.#health.set(key, h);
    this.#armHealth(key, h, this.timing.healthIntervalMs);
  }

  #armHealth(key: string, h: Health, ms: number): void {
    if (h.timer) clearTimeout(h.timer);
    h.timer = setTimeout(() => void this.#check(key, h), ms);
    h.timer.unref?.();
  }

  #stopHealth(key: string): void {
    const h = this.#health.get(key);
    if (h?.timer) clearTimeout(h.timer);
    this.#health.delete(key);
  }

  async #check(key: string, h: Health): Promise<void> {
    h.timer = undefined;
    if (this.#health.get(key) !== h || h.running) return;
    const tracked = this.#table.get(key)?.get(MESSAGING_ALPN);
    if (tracked === undefined || tracked.connection.isClosed) {
      this.#stopHealth(key);
      return;
    }
    h.running = true;
    try {
      const rtt = await this.#messaging.ping(tracked.connection, { timeoutMs: this.timing.healthTimeoutMs, signal: tracked.stop.signal });
      h.misses = 0;
      await this.run(() => this.#refresh(key, { rttMs: round(rtt), path: tracked.connection.stats().relayed ? 'relay' : 'direct' }));
      if (this.#health.get(key) === h) this.#armHealth(key, h, this.timing.healthIntervalMs);
    } catch (err) {
      if (tracked.connection.isClosed || this.#health.get(key) !== h) return;
      h.misses++;
      this.#log.debug('health check missed', { peer: key.slice(0, 10), misses: h.misses, error: String((err as Error).message) });
      if (h.misses >= this.timing.healthMaxMisses) {
        tracked.connection.close(CloseCode.HEALTH_CHECK_FAILED, `no answer to ${h.misses} pings`);
        return;
      }
      // Ask again at once: a dead peer is declared lost within misses × timeout.
      this.#armHealth(key, h, 0);
    } finally {
      h.running = false;
    }
  }

  // ------------------------------------------------------------------ registry commands

  /** Forget a device: registry, connections (closed with UNPAIRED), reconnects. */
  async unpair(id: PublicKey): Promise<DeviceSnapshot> {
    const key = id.toString();
    const snap = await this.run(() => {
      this.#cancelReconnect(key);
      this.#stopHealth(key);
      for (const t of this.#table.get(key)?.values() ?? []) t.connection.close(CloseCode.UNPAIRED, 'unpaired');
      return this.#registry.unpair(id);
    });
    await this.#registry.flush();
    return snap;
  }

  async startPairing(id: PublicKey, addr?: EndpointAddr): Promise<DeviceSnapshot> {
    return this.run(() => this.#registry.startPairing(id, addr));
  }

  async completePairing(options: { id: PublicKey; info: DeviceInfo; linkKey: Uint8Array; addr?: EndpointAddr }): Promise<DeviceSnapshot> {
    const snap = await this.run(() => this.#registry.pair(options));
    await this.#registry.flush();
    this.resume(options.id);
    return snap;
  }

  async failPairing(id: PublicKey): Promise<void> {
    await this.run(() => {
      if (this.#registry.state(id) === 'pairing') this.#registry.failPairing(id);
    });
  }

  async discovered(addr: EndpointAddr, info?: DeviceInfo): Promise<DeviceSnapshot> {
    const snap = await this.run(() => this.#registry.discover(addr, info));
    // A paired device heard again at a new address: dial it if we were waiting for one.
    if (this.#registry.isPaired(addr.id) && (this.#table.get(addr.id.toString())?.size ?? 0) === 0 && !this.#paused.has(addr.id.toString())) this.resume(addr.id);
    return snap;
  }

  async expire(id: PublicKey): Promise<void> {
    await this.run(() => {
      if (this.#registry.state(id) === 'discovered') this.#registry.expire(id);
    });
  }
}

/**
 * Which of two connections to one device on one ALPN to keep: `'existing'` or `'new'`.
 * `side` is ours (`'client'`: we dialled). Two that came up within `raceWindowMs` from
 * opposite sides are a simultaneous dial: keep the one dialled by the lower EndpointId, a
 * rule both devices apply with the same result. Otherwise the newer one wins: the peer (or
 * we) dialled again because the older one was lost.
 */
export function settleDuplicate(
  existing: { side: 'client' | 'server'; openedAt: number },
  incoming: { side: 'client' | 'server'; openedAt: number },
  weAreLower: boolean,
  raceWindowMs: number,
): 'existing' | 'new' {
  const simultaneous = existing.side !== incoming.side && incoming.openedAt - existing.openedAt <= raceWindowMs;
  if (!simultaneous) return 'new';
  // The lower id's dial: ours ('client') if we are lower, the peer's ('server') otherwise.
  const winningSide = weAreLower ? 'client' : 'server';
  return incoming.side === winningSide ? 'new' : 'existing';
}

/** Byte-wise order of two EndpointIds (the same as comparing their hex). */
export function compareIds(a: PublicKey, b: PublicKey): number {
  const x = a.bytes;
  const y = b.bytes;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
