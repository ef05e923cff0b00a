/**
 * The relays of one endpoint: a home relay chosen by latency (`/ping` probes, iroh-wire
 * §1.10) that the endpoint stays connected to so peers can reach it by its id, and relays
 * opened on demand to reach peers whose home relay is another one, closed again when idle.
 *
 * Every relay connection is a {@link RelayClient}, which reconnects by itself; the pool only
 * decides which relays to hold and which one is home.
 *
 * @module
 */
import type { SecretKey, PublicKey } from '../../identity/keys.ts';
import type { RelayUrl } from '../../identity/relay-url.ts';
import { RelayClientBase as RelayClient, type RelayDatagrams } from '../../relay/client/relay-client.ts';
import type { NodeTlsOptions } from '../../relay/client/node-transport.ts';
import type { RelayTransport } from '../../relay/client/transport.ts';
import { KeyCache } from '../../relay/protocol/key-cache.ts';
import type { RelayClientState, RelayClientStats } from '../../relay/client/index.ts';
import type { CryptoProvider } from '../crypto/provider.ts';
import { SdnetError } from '../../util/errors.ts';
import {
  HOME_RELAY_DOWN_MS,
  HOME_RELAY_MIN_IMPROVEMENT_MS,
  MAX_RELAY_CLIENTS,
  RELAY_IDLE_SWEEP_MS,
  RELAY_IDLE_TIMEOUT_MS,
  RELAY_PROBES_PER_REPORT,
  RELAY_REPORT_INTERVAL_MS,
  RELAY_REPORT_RETRY_MAX_MS,
  RELAY_REPORT_RETRY_MIN_MS,
} from './limits.ts';
import type { RelayProbeOptions } from './relay-probe-options.ts';

/** Measures a relay's `/ping` round trip (ms, or undefined when it did not answer); never throws. */
export type ProbeRelay = (url: RelayUrl, options: RelayProbeOptions) => Promise<number | undefined>;

export interface RelayPoolOptions {
  secretKey: SecretKey;
  /** The relays a home relay is chosen from (none: no home relay, relays only on demand). */
  relays: readonly RelayUrl[];
  /** Datagrams received from any relay. */
  onDatagrams: (url: RelayUrl, datagrams: RelayDatagrams) => void;
  crypto?: CryptoProvider;
  /** TLS options for `https` relays (trusted CAs, server name). */
  tls?: NodeTlsOptions;
  /** Bearer token for relays with access control. */
  token?: string;
  /** WebSocket implementation. */
  transport: RelayTransport;
  /** Relay latency probe (`GET /ping`). */
  probe: ProbeRelay;
  /** Close relays opened for peers after this long without traffic (ms). */
  idleTimeoutMs?: number;
}

/** One relay connection of the pool, as reported by {@link RelayPool.relays}. */
export interface RelayInfo {
  url: RelayUrl;
  home: boolean;
  state: RelayClientState;
  /** Best `/ping` round trip of the last report, ms. */
  latencyMs: number | undefined;
  stats: RelayClientStats;
}

interface Entry {
  readonly url: RelayUrl;
  readonly client: RelayClient;
  lastUsed: number;
}

const now = (): number => performance.now();

export class RelayPool {
  readonly #options: RelayPoolOptions;
  readonly #relays: readonly RelayUrl[];
  readonly #entries = new Map<string, Entry>();
  readonly #keys = new KeyCache();
  readonly #latency = new Map<string, number>();
  readonly #homeListeners = new Set<(url: RelayUrl | undefined, previous: RelayUrl | undefined) => void>();
  readonly #onlineListeners = new Set<(online: boolean, home: RelayUrl | undefined) => void>();
  #wasOnline = false;
  readonly #onlineWaiters = new Set<() => void>();
  readonly #idleMs: number;
  #home: RelayUrl | undefined;
  #reportTimer: ReturnType<typeof setTimeout> | undefined;
  #downTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #reporting: AbortController | undefined;
  #retryMs = RELAY_REPORT_RETRY_MIN_MS;
  #closed = false;
  /** Reports run so far. */
  reports = 0;

  constructor(options: RelayPoolOptions) {
    this.#options = options;
    this.#relays = [...new Map(options.relays.map((u) => [u.toString(), u])).values()];
    this.#idleMs = options.idleTimeoutMs ?? RELAY_IDLE_TIMEOUT_MS;
  }

  /** Start choosing a home relay (if any are configured) and sweeping idle ones. */
  start(): void {
    if (this.#closed) return;
    this.#sweepTimer = setInterval(() => this.#sweep(), Math.min(RELAY_IDLE_SWEEP_MS, this.#idleMs));
    this.#sweepTimer.unref?.();
    if (this.#relays.length === 1) this.#setHome(this.#relays[0]!);
    else if (this.#relays.length > 1) void this.#report();
  }

  /** The home relay, once one is chosen. */
  get home(): RelayUrl | undefined {
    return this.#home;
  }

  /** Whether the home relay is chosen and connected. */
  get isOnline(): boolean {
    return this.#home !== undefined && this.#entries.get(this.#home.toString())?.client.state === 'connected';
  }

  /** The relays configured to choose a home from. */
  get configured(): readonly RelayUrl[] {
    return this.#relays;
  }

  /** Called whenever the home relay changes. Returns the unsubscribe function. */
  onHomeChange(listener: (url: RelayUrl | undefined, previous: RelayUrl | undefined) => void): () => void {
    this.#homeListeners.add(listener);
    return () => this.#homeListeners.delete(listener);
  }

  /** Called whenever {@link isOnline} changes. Returns the unsubscribe function. */
  onOnlineChange(listener: (online: boolean, home: RelayUrl | undefined) => void): () => void {
    this.#onlineListeners.add(listener);
    return () => this.#onlineListeners.delete(listener);
  }

  #checkOnline(): void {
    const online = !this.#closed && this.isOnline;
    if (online === this.#wasOnline) return;
    this.#wasOnline = online;
    for (const l of [...this.#onlineListeners]) l(online, this.#home);
  }

  /**
   * Resolves with the home relay once it is chosen and connected.
   *
   * @throws {SdnetError} `ERR_NO_RELAYS` when no relays are configured; `ERR_ENDPOINT_CLOSED`
   *   when the pool closes first; the signal's reason when it aborts
   */
  online(signal?: AbortSignal): Promise<RelayUrl> {
    if (this.#relays.length === 0) return Promise.reject(new SdnetError('ERR_NO_RELAYS', 'No relays are configured, so there is no home relay to be online with'));
    if (this.#closed) return Promise.reject(new SdnetError('ERR_ENDPOINT_CLOSED', 'Endpoint is closed'));
    if (this.isOnline) return Promise.resolve(this.#home!);
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.#closed) {
          done();
          reject(new SdnetError('ERR_ENDPOINT_CLOSED', 'Endpoint is closed'));
        } else if (this.isOnline) {
          done();
          resolve(this.#home!);
        }
      };
      const onAbort = () => {
        done();
        reject(signal!.reason ?? new DOMException('The operation was aborted', 'AbortError'));
      };
      const done = () => {
        this.#onlineWaiters.delete(check);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#onlineWaiters.add(check);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Send datagrams to `dst` through the relay at `url` (opened if needed). Never throws. */
  send(url: RelayUrl, dst: PublicKey, datagrams: readonly Uint8Array[]): void {
    if (this.#closed) return;
    const entry = this.#entry(url);
    entry.lastUsed = now();
    try {
      entry.client.send(dst, datagrams);
    } catch {
      // A datagram too large for a relay frame: lost, like an oversized UDP datagram.
    }
  }

  /** The relay connections held now. */
  relays(): RelayInfo[] {
    return [...this.#entries.values()].map((e) => ({
      url: e.url,
      home: this.#home !== undefined && e.url.toString() === this.#home.toString(),
      state: e.client.state,
      latencyMs: this.#latency.get(e.url.toString()),
      stats: e.client.stats,
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#checkOnline();
    this.#reporting?.abort();
    if (this.#reportTimer) clearTimeout(this.#reportTimer);
    if (this.#downTimer) clearTimeout(this.#downTimer);
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    for (const w of [...this.#onlineWaiters]) w();
    const clients = [...this.#entries.values()].map((e) => e.client);
    this.#entries.clear();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }

  #entry(url: RelayUrl): Entry {
    const key = url.toString();
    let entry = this.#entries.get(key);
    if (entry !== undefined) return entry;
    if (this.#entries.size >= MAX_RELAY_CLIENTS) this.#evictOne();
    const client = new RelayClient({
      url,
      secretKey: this.#options.secretKey,
      keyCache: this.#keys,
      ...(this.#options.crypto ? { crypto: this.#options.crypto } : {}),
      ...(this.#options.tls ? { tls: this.#options.tls } : {}),
      ...(this.#options.token !== undefined ? { token: this.#options.token } : {}),
      transport: this.#options.transport,
      onDatagrams: (d) => {
        const e = this.#entries.get(key);
        if (e !== undefined) e.lastUsed = now();
        this.#options.onDatagrams(url, d);
      },
      onListenerError: () => undefined,
    });
    entry = { url, client, lastUsed: now() };
    this.#entries.set(key, entry);
    client.on('connected', () => this.#onConnected(url));
    client.on('disconnected', () => this.#onDisconnected(url));
    return entry;
  }

  /** Too many relays open: close the least recently used one that is not home. */
  #evictOne(): void {
    let victim: Entry | undefined;
    for (const e of this.#entries.values()) {
      if (this.#isHome(e.url)) continue;
      if (victim === undefined || e.lastUsed < victim.lastUsed) victim = e;
    }
    if (victim === undefined) return;
    this.#entries.delete(victim.url.toString());
    void victim.client.close().catch(() => undefined);
  }

  #isHome(url: RelayUrl): boolean {
    return this.#home !== undefined && this.#home.toString() === url.toString();
  }

  #sweep(): void {
    const t = now();
    for (const [key, e] of this.#entries) {
      if (this.#isHome(e.url) || t - e.lastUsed < this.#idleMs) continue;
      this.#entries.delete(key);
      void e.client.close().catch(() => undefined);
    }
  }

  #setHome(url: RelayUrl): void {
    const changed = !this.#isHome(url);
    const previous = this.#home;
    this.#home = url;
    const entry = this.#entry(url);
    entry.lastUsed = now();
    // The client retries by itself until it connects (or the pool closes).
    entry.client.connect().catch(() => undefined);
    if (changed) for (const l of [...this.#homeListeners]) l(url, previous);
    this.#notifyOnline();
  }

  #notifyOnline(): void {
    for (const w of [...this.#onlineWaiters]) w();
    this.#checkOnline();
  }

  #onConnected(url: RelayUrl): void {
    if (!this.#isHome(url)) return;
    if (this.#downTimer) clearTimeout(this.#downTimer);
    this.#downTimer = undefined;
    this.#notifyOnline();
  }

  #onDisconnected(url: RelayUrl): void {
    this.#checkOnline();
    if (!this.#isHome(url) || this.#closed || this.#relays.length < 2 || this.#downTimer) return;
    // Home is down: if it stays down, look for another.
    this.#downTimer = setTimeout(() => {
      this.#downTimer = undefined;
      if (!this.isOnline) void this.#report();
    }, HOME_RELAY_DOWN_MS);
    this.#downTimer.unref?.();
  }

  /** Probe every configured relay and choose the home relay (iroh's net report, `/ping` only). */
  async #report(): Promise<void> {
    if (this.#closed || this.#reporting) return;
    if (this.#reportTimer) clearTimeout(this.#reportTimer);
    this.#reportTimer = undefined;
    const controller = new AbortController();
    this.#reporting = controller;
    let results: { url: RelayUrl; ms: number | undefined }[];
    try {
      results = await Promise.all(
        this.#relays.map(async (url) => ({
          url,
          ms: await this.#options.probe(url, { count: RELAY_PROBES_PER_REPORT, signal: controller.signal, ...(this.#options.tls ? { tls: this.#options.tls } : {}) }),
        })),
      );
    } finally {
      this.#reporting = undefined;
    }
    if (this.#closed) return;
    this.reports++;
    for (const r of results) {
      if (r.ms === undefined) this.#latency.delete(r.url.toString());
      else this.#latency.set(r.url.toString(), r.ms);
    }
    const ok = results.filter((r): r is { url: RelayUrl; ms: number } => r.ms !== undefined).sort((a, b) => a.ms - b.ms);
    if (ok.length === 0) {
      // Nothing answers: try again, less and less often.
      this.#schedule(this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, RELAY_REPORT_RETRY_MAX_MS);
      return;
    }
    this.#retryMs = RELAY_REPORT_RETRY_MIN_MS;
    const best = ok[0]!;
    const current = this.#home === undefined ? undefined : ok.find((r) => r.url.toString() === this.#home!.toString());
    const better = current === undefined || (best.ms + HOME_RELAY_MIN_IMPROVEMENT_MS < current.ms && best.ms < 0.8 * current.ms);
    if (this.#home === undefined || !this.isOnline || better) this.#setHome(best.url);
    this.#schedule(RELAY_REPORT_INTERVAL_MS);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    if (this.#reportTimer) clearTimeout(this.#reportTimer);
    this.#reportTimer = setTimeout(() => void this.#report(), ms);
    this.#reportTimer.unref?.();
  }
}
