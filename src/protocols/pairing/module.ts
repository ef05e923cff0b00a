/**
 * The pairing module (the `pairing` seat of the device service, src/service/README.md):
 * `sdnet/pair/1`, the only ALPN unpaired peers reach.
 *
 * **Initiator** (`startAsInitiator`, `sdnet pair invite`): a fresh code; R advertised on the
 * LAN (a {@link PairingDiscovery}, when one is installed) and registered at every configured
 * relay's rendezvous (R → our EndpointId, home relay, direct addresses), withdrawn from all of
 * them when the session ends — paired, cancelled, expired or burnt. Each joiner's `Start`
 * runs one exchange (exchange.ts); a wrong try counts, 3 burn the code, the first success
 * uses it up. The joiner is `pairing` in the registry during its exchange, `paired` after,
 * and forgotten on failure: nothing is stored for a wrong code.
 *
 * **Joiner** (`startAsJoiner`, `sdnet pair join`): the code is parsed first (a typo fails
 * here, before any network). Then the initiator is looked for on every path at once — the QR
 * payload's or `--node-id`'s address, the LAN discovery, the relays' rendezvous (typed words,
 * across networks) — and each distinct candidate is dialled and tried; `--node-id` pins the
 * EndpointId. The first confirmed exchange wins.
 *
 * Vouching: see vouch.ts.
 *
 * @module
 */
import type { Connection } from '../../endpoint/connection.ts';
import { EndpointAddr } from '../../identity/endpoint-addr.ts';
import { PublicKey } from '../../identity/keys.ts';
import type { DeviceSnapshot } from '../../service/device-registry.ts';
import type { ModuleContext, PairingInvite, PairingModule, PairingSessionStatus, VouchResult } from '../../service/modules.ts';
import type { ConnectionContext, DeviceProtocol, ProtocolLimits } from '../../service/protocol-registry.ts';
import { NetworkIdentity } from '../../service/identity.ts';
import { abortReason, delay, linkedSignal } from '../../util/abort.ts';
import { toHex } from '../../util/bytes.ts';
import { SdnetError } from '../../util/errors.ts';
import { CloseCode, StreamCode } from '../codes.ts';
import { StreamProtocolError } from '../framing.ts';
import {
  PAIRING_ATTEMPT_TIMEOUT_MS,
  PAIRING_CODE_TTL_MS,
  PAIRING_DONE_WRITE_MS,
  PAIRING_CONNECTION_IDLE_MS,
  PAIRING_MAX_ACTIVE_INVITES,
  PAIRING_MAX_CONCURRENT_STREAMS,
  PAIRING_MAX_FAILED_ATTEMPTS,
  PAIRING_MAX_FINISHED_SESSIONS,
  PAIRING_MAX_MESSAGE_BYTES,
  PAIRING_MAX_STREAMS_PER_CONNECTION,
  PAIRING_MAX_UNPAIRED_CONNECTIONS,
  PAIRING_REGISTER_RETRY_MAX_MS,
  PAIRING_REGISTER_RETRY_MIN_MS,
  PAIRING_STARTS_PER_SECOND,
  PAIRING_STREAM_IDLE_TIMEOUT_MS,
  VOUCH_CONFIRM_TIMEOUT_MS,
  VOUCH_MAX_AGE_MS,
  VOUCH_MAX_PENDING,
} from '../limits.ts';
import { FramedStream } from '../stream.ts';
import { PairingCode, parsePairingInput, qrPayload, type PairingTicket } from './code.ts';
import type { PairingDiscovery } from './discovery.ts';
import { PairingError, isPairingErrorCode, type PairingErrorCode } from './errors.ts';
import { bindingOf, InitiatorExchange, JoinerExchange, type SealedDevice } from './exchange.ts';
import { decodePairMessage, encodePairMessage, PAIR_ALPN, pairMessageType, type PairMessage, type WireAddr, type WireDevice } from './messages.ts';
import { lookupRendezvous, registerRendezvous, RendezvousError, withdrawRendezvous } from './rendezvous.ts';
import { introductionBytes, readWireDevice, vouchedLinkKey, wireDevice, type IntroducedDevice } from './vouch.ts';

export { PAIR_ALPN };

export interface PairingOptions {
  /** LAN discoveries (mDNS) to advertise and find R with. */
  readonly discovery?: readonly PairingDiscovery[];
  /** Register R at the configured relays' rendezvous and look it up there (default true). */
  readonly rendezvous?: boolean;
  /** Accept introductions (vouches) from paired devices without asking (default false). */
  readonly autoAcceptVouches?: boolean;
  /** How long a code lives (ms, default 5 min). */
  readonly codeTtlMs?: number;
  /** How long a joiner looks for the initiator and tries (ms, default 30 s). */
  readonly joinTimeoutMs?: number;
  /** Rendezvous lookups: first retry delay (ms, default 200; doubles up to 1 s). */
  readonly lookupIntervalMs?: number;
}

/** The pairing seat's factory: `Core.init({ modules: { pairing: pairingModule() } })`. */
export function pairingModule(options: PairingOptions = {}): (ctx: ModuleContext) => PairingManager {
  return (ctx) => new PairingManager(ctx, options);
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // The caller may never await it (an invite nobody joins): not an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

type InviteState = 'waiting' | 'paired' | 'expired' | 'burnt' | 'cancelled' | 'failed';

interface InviteSession {
  readonly id: string;
  readonly r: string;
  readonly code: PairingCode;
  readonly createdAt: number;
  readonly expiresAt: number;
  state: InviteState;
  failures: number;
  inFlight: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly withdraws: Array<() => Promise<void> | void>;
  readonly outcome: Deferred<DeviceSnapshot>;
  readonly stop: AbortController;
  peer: { endpointId: string; name?: string } | undefined;
  error: { code: string; message: string } | undefined;
}

interface JoinSession {
  readonly id: string;
  readonly r: string;
  readonly createdAt: number;
  state: 'searching' | 'exchanging' | 'paired' | 'failed' | 'cancelled';
  readonly stop: AbortController;
  peer: { endpointId: string; name?: string } | undefined;
  error: { code: string; message: string } | undefined;
}

interface PendingIntroduction {
  readonly id: string;
  readonly voucher: PublicKey;
  readonly vouchee: IntroducedDevice;
  readonly expiresAt: number;
}

interface AwaitingConfirmation {
  readonly id: string;
  readonly resolve: (accept: boolean) => void;
}

/** A tiny token bucket (starts per second across all peers). */
class StartBudget {
  #tokens: number;
  #last = performance.now();
  readonly #rate: number;
  constructor(rate: number) {
    this.#rate = rate;
    this.#tokens = rate * 2;
  }
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.#rate * 2, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

const newId = (): string => toHex(crypto.getRandomValues(new Uint8Array(8)));

function errorOf(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return { code: typeof e?.code === 'string' ? e.code : 'ERR_PAIRING_PROTOCOL', message: typeof e?.message === 'string' ? e.message : String(err) };
}

/** The pairing error a failure amounts to (unknown failures are protocol errors). */
function asPairingError(err: unknown, fallback: PairingErrorCode = 'ERR_PAIRING_PROTOCOL'): PairingError {
  if (err instanceof PairingError) return err;
  const code = (err as { code?: unknown })?.code;
  if (err instanceof Error && err.name === 'StreamIdleError') return new PairingError('ERR_PAIRING_TIMEOUT', 'the peer went silent', { cause: err });
  if (isPairingErrorCode(code)) return new PairingError(code, undefined, { cause: err });
  return new PairingError(fallback, err instanceof Error ? err.message : undefined, { cause: err });
}

export class PairingManager implements PairingModule {
  readonly protocols: readonly DeviceProtocol[];
  readonly #ctx: ModuleContext;
  readonly #options: PairingOptions;
  readonly #invites = new Map<string, InviteSession>();
  readonly #joins = new Map<string, JoinSession>();
  readonly #finished: PairingSessionStatus[] = [];
  /** R of recently ended invites → why (a joiner is told "expired"/"burnt" rather than "not found"). */
  readonly #endedR = new Map<string, PairingErrorCode>();
  readonly #budget = new StartBudget(PAIRING_STARTS_PER_SECOND);
  readonly #connections = new Map<Connection, { streams: number; timer: ReturnType<typeof setTimeout> | undefined }>();
  readonly #pendingIntros = new Map<string, PendingIntroduction>();
  readonly #awaiting = new Map<string, AwaitingConfirmation>();
  readonly #background = new Set<Promise<unknown>>();
  #stopped = false;

  constructor(ctx: ModuleContext, options: PairingOptions = {}) {
    this.#ctx = ctx;
    this.#options = options;
    const limits: ProtocolLimits = { maxMessageBytes: PAIRING_MAX_MESSAGE_BYTES, maxConcurrentStreams: PAIRING_MAX_CONCURRENT_STREAMS, idleTimeoutMs: PAIRING_STREAM_IDLE_TIMEOUT_MS };
    this.protocols = [
      {
        alpn: PAIR_ALPN,
        allowUnpaired: true,
        limits,
        connectionOpened: (c) => this.#connectionOpened(c),
        handleStream: (stream, c) => this.#handleStream(stream, c),
      },
    ];
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p)).catch(() => undefined);
    return p;
  }

  // ================================================================== status

  status(): PairingSessionStatus[] {
    const live: PairingSessionStatus[] = [];
    for (const s of this.#invites.values()) live.push(this.#inviteStatus(s));
    for (const j of this.#joins.values()) live.push(this.#joinStatus(j));
    return [...live, ...this.#finished];
  }

  #inviteStatus(s: InviteSession): PairingSessionStatus {
    return {
      sessionId: s.id,
      role: 'initiator',
      state: s.state,
      rendezvousId: s.r,
      createdAt: s.createdAt,
      expiresAt: s.expiresAt,
      attemptsLeft: Math.max(0, PAIRING_MAX_FAILED_ATTEMPTS - s.failures),
      ...(s.peer ? { peer: s.peer } : {}),
      ...(s.error ? { error: s.error } : {}),
    };
  }

  #joinStatus(j: JoinSession): PairingSessionStatus {
    return { sessionId: j.id, role: 'joiner', state: j.state, rendezvousId: j.r, createdAt: j.createdAt, ...(j.peer ? { peer: j.peer } : {}), ...(j.error ? { error: j.error } : {}) };
  }

  #remember(status: PairingSessionStatus): void {
    this.#finished.unshift(status);
    this.#finished.length = Math.min(this.#finished.length, PAIRING_MAX_FINISHED_SESSIONS);
  }

  cancel(sessionId: string): boolean {
    for (const s of this.#invites.values()) {
      if (s.id === sessionId) {
        this.#endInvite(s, 'cancelled', new PairingError('ERR_PAIRING_CANCELLED'));
        return true;
      }
    }
    const j = this.#joins.get(sessionId);
    if (j !== undefined) {
      j.stop.abort(new PairingError('ERR_PAIRING_CANCELLED'));
      return true;
    }
    return false;
  }

  // ================================================================== our device as we describe it

  #own(): SealedDevice {
    const addr = this.#ctx.endpoint.addr();
    return { info: this.#ctx.identity.info, addr: { relay_urls: addr.relayUrls.slice(0, 4).map(String), direct_addresses: addr.directAddresses.slice(0, 12).map(String) } };
  }

  // ================================================================== initiator

  async startAsInitiator(options: { signal?: AbortSignal; ttlMs?: number; [k: string]: unknown } = {}): Promise<PairingInvite> {
    if (this.#stopped) throw new SdnetError('ERR_SERVICE_STOPPED', 'The service is shutting down');
    options.signal?.throwIfAborted();
    if (this.#invites.size >= PAIRING_MAX_ACTIVE_INVITES) throw new PairingError('ERR_PAIRING_BUSY', `At most ${PAIRING_MAX_ACTIVE_INVITES} codes can be shown at once`);
    let code = PairingCode.generate();
    while (this.#invites.has(code.rendezvousId)) code = PairingCode.generate();
    const ttl = typeof options.ttlMs === 'number' && options.ttlMs > 0 ? Math.min(options.ttlMs, PAIRING_CODE_TTL_MS) : (this.#options.codeTtlMs ?? PAIRING_CODE_TTL_MS);
    const now = Date.now();
    const s: InviteSession = {
      id: newId(),
      r: code.rendezvousId,
      code,
      createdAt: now,
      expiresAt: now + ttl,
      state: 'waiting',
      failures: 0,
      inFlight: 0,
      timer: undefined,
      withdraws: [],
      outcome: deferred<DeviceSnapshot>(),
      stop: new AbortController(),
      peer: undefined,
      error: undefined,
    };
    this.#invites.set(s.r, s);
    s.timer = setTimeout(() => this.#endInvite(s, 'expired', new PairingError('ERR_PAIRING_EXPIRED')), ttl);
    s.timer.unref?.();
    options.signal?.addEventListener('abort', () => this.#endInvite(s, 'cancelled', new PairingError('ERR_PAIRING_CANCELLED')), { once: true, signal: s.stop.signal });
    this.#advertise(s);
    const addr = this.#ctx.endpoint.addr();
    const relay = this.#ctx.endpoint.homeRelay?.toString();
    const qr = qrPayload(code, this.#ctx.identity.endpointId, relay, addr.directAddresses.map(String));
    this.#progress({ sessionId: s.id, role: 'initiator', stage: 'code-generated', rendezvousId: s.r, expiresAt: s.expiresAt });
    return {
      sessionId: s.id,
      code: code.words,
      expiresAt: s.expiresAt,
      qr,
      paired: s.outcome.promise,
      cancel: () => this.#endInvite(s, 'cancelled', new PairingError('ERR_PAIRING_CANCELLED')),
    };
  }

  /** Advertise R on every path: LAN discoveries and the relays' rendezvous. */
  #advertise(s: InviteSession): void {
    for (const d of this.#options.discovery ?? []) {
      void this.#track(
        (async () => {
          try {
            const stop = await d.advertise(s.r);
            if (s.state !== 'waiting') await stop();
            else s.withdraws.push(stop);
          } catch (err) {
            this.#ctx.log.warn('pairing: LAN advertisement failed', { discovery: d.name, error: String(err) });
          }
        })(),
      );
    }
    if (this.#options.rendezvous === false || this.#ctx.relays.length === 0) return;
    const registered = new Set<string>();
    s.withdraws.push(async () => {
      const id = this.#ctx.identity.endpointId.toString();
      await Promise.allSettled([...registered].map((relay) => withdrawRendezvous(relay, s.r, id, (b) => this.#ctx.identity.sign(b), this.#tlsOptions())));
    });
    // A later registration (a new home relay) supersedes the retries of an earlier one.
    let generation = 0;
    const register = async (): Promise<void> => {
      const mine = ++generation;
      const home = this.#ctx.endpoint.homeRelay?.toString() ?? null;
      const addr = this.#ctx.endpoint.addr();
      const record = { endpointId: this.#ctx.identity.endpointId.toString(), relay: home, addrs: addr.directAddresses.slice(0, 8).map(String) };
      await Promise.allSettled(
        this.#ctx.relays.map(async (relay) => {
          for (let wait = PAIRING_REGISTER_RETRY_MIN_MS; s.state === 'waiting' && mine === generation; wait = Math.min(2 * wait, PAIRING_REGISTER_RETRY_MAX_MS)) {
            registered.add(relay);
            try {
              await registerRendezvous(relay, s.r, record, Math.max(1000, s.expiresAt - Date.now()), (b) => this.#ctx.identity.sign(b), this.#tlsOptions());
              return;
            } catch (err) {
              const status = err instanceof RendezvousError ? err.status : undefined;
              const retry = status === undefined || status === 429 || status >= 500;
              this.#ctx.log.warn('pairing: rendezvous registration failed', { relay, error: String((err as Error).message), ...(retry ? { retryInMs: wait } : {}) });
              // A definite no (a malformed record, R held by another key) is not asked again.
              if (!retry) return;
            }
            try {
              await delay(wait, s.stop.signal);
            } catch {
              return;
            }
          }
        }),
      );
    };
    void this.#track(
      (async () => {
        // The record names our home relay: wait for it (bounded by the code's life).
        if (this.#ctx.endpoint.homeRelay === undefined) {
          try {
            await this.#ctx.endpoint.online({ signal: s.stop.signal });
          } catch {
            if (s.state !== 'waiting') return;
          }
        }
        if (s.state !== 'waiting') return;
        await register();
        // A new home relay: register again so joiners find the right one.
        this.#ctx.endpoint.on('online', () => void this.#track(register()), { signal: s.stop.signal });
      })(),
    );
  }

  #tlsOptions(): { tls?: NonNullable<ModuleContext['relayTls']> } {
    return this.#ctx.relayTls ? { tls: this.#ctx.relayTls } : {};
  }

  /** End an invite once: timer, secret, R withdrawn everywhere, outcome settled. */
  #endInvite(s: InviteSession, state: Exclude<InviteState, 'waiting'>, error?: PairingError, device?: DeviceSnapshot): void {
    if (s.state !== 'waiting') return;
    s.state = state;
    if (s.timer) clearTimeout(s.timer);
    s.stop.abort();
    s.code.destroy();
    if (this.#invites.get(s.r) === s) this.#invites.delete(s.r);
    if (state !== 'paired') {
      this.#endedR.set(s.r, state === 'burnt' ? 'ERR_PAIRING_BURNT' : state === 'expired' ? 'ERR_PAIRING_EXPIRED' : 'ERR_PAIRING_CANCELLED');
    } else this.#endedR.set(s.r, 'ERR_PAIRING_CODE_USED');
    while (this.#endedR.size > PAIRING_MAX_FINISHED_SESSIONS) this.#endedR.delete(this.#endedR.keys().next().value!);
    if (error) s.error = { code: error.code, message: error.message };
    for (const w of s.withdraws.splice(0)) {
      void this.#track(
        Promise.resolve()
          .then(w)
          .catch((err: unknown) => this.#ctx.log.warn('pairing: withdrawing R failed', { error: String(err) })),
      );
    }
    this.#remember(this.#inviteStatus(s));
    this.#progress({
      sessionId: s.id,
      role: 'initiator',
      stage: state,
      rendezvousId: s.r,
      ...(s.peer ? { peer: s.peer } : {}),
      ...(error ? { error: { code: error.code, message: error.message } } : {}),
    });
    if (state === 'paired' && device) s.outcome.resolve(device);
    else s.outcome.reject(error ?? new PairingError('ERR_PAIRING_CANCELLED'));
  }

  #progress(p: Parameters<ModuleContext['pairingProgress']>[0]): void {
    try {
      this.#ctx.pairingProgress(p);
    } catch (err) {
      this.#ctx.log.error('pairing: a progress listener threw', { error: String(err) });
    }
  }

  // ================================================================== server side (every stream a peer opens)

  #connectionOpened(c: ConnectionContext): void {
    if (c.side !== 'server') return;
    const paired = this.#ctx.registry.isPaired(c.remoteId);
    if (!paired && this.#connections.size >= PAIRING_MAX_UNPAIRED_CONNECTIONS) {
      c.connection.close(CloseCode.TOO_MANY_CONNECTIONS, 'too many pairing connections');
      return;
    }
    if (paired) return;
    const entry = { streams: 0, timer: undefined as ReturnType<typeof setTimeout> | undefined };
    this.#connections.set(c.connection, entry);
    // A connection of an unpaired peer that starts nothing is closed: it holds a slot.
    entry.timer = setTimeout(() => {
      if (entry.streams === 0) c.connection.close(CloseCode.NORMAL, 'idle pairing connection');
    }, PAIRING_CONNECTION_IDLE_MS);
    entry.timer.unref?.();
    void c.connection.closed.then(() => {
      if (entry.timer) clearTimeout(entry.timer);
      this.#connections.delete(c.connection);
    });
  }

  async #read(stream: FramedStream): Promise<PairMessage | undefined> {
    const frame = await stream.read();
    return frame === undefined ? undefined : decodePairMessage(frame);
  }

  async #write(stream: FramedStream, m: PairMessage): Promise<void> {
    await stream.write(encodePairMessage(m));
  }

  /** Tell the peer why we stop, then end our side; never throws. */
  async #fail(stream: FramedStream, code: string): Promise<void> {
    try {
      await this.#write(stream, { Fail: { code } });
      await stream.finish();
    } catch {
      // the peer is gone
    }
  }

  async #handleStream(stream: FramedStream, c: ConnectionContext): Promise<void> {
    const entry = this.#connections.get(c.connection);
    if (entry !== undefined) {
      entry.streams++;
      if (entry.streams > PAIRING_MAX_STREAMS_PER_CONNECTION) {
        c.connection.close(CloseCode.TOO_MANY_CONNECTIONS, 'too many pairing attempts on one connection');
        return;
      }
    }
    const first = await this.#read(stream);
    if (first === undefined) return;
    if ('Start' in first) return this.#serveStart(stream, c, first.Start);
    if ('Introduce' in first) return this.#serveIntroduce(stream, c, first.Introduce);
    if ('Introduced' in first) return this.#serveIntroduced(stream, c, first.Introduced);
    if ('VouchHello' in first) return this.#serveVouchHello(stream, c, first.VouchHello);
    // A reply or a later step of an exchange that was never started.
    throw new StreamProtocolError('ERR_PAIRING_PROTOCOL', StreamCode.MALFORMED_MESSAGE, `${pairMessageType(first)} out of order`);
  }

  async #serveStart(stream: FramedStream, c: ConnectionContext, start: { v: number; r: string; ya: Uint8Array }): Promise<void> {
    const peer = c.remoteId;
    if (!this.#budget.take()) return this.#fail(stream, 'ERR_PAIRING_BUSY');
    const s = this.#invites.get(start.r);
    if (s === undefined || s.state !== 'waiting') return this.#fail(stream, this.#endedR.get(start.r) ?? 'ERR_PAIRING_NOT_FOUND');
    if (peer.equals(this.#ctx.identity.endpointId)) return this.#fail(stream, 'ERR_PAIRING_PROTOCOL');
    if (this.#ctx.registry.isPaired(peer)) return this.#fail(stream, 'ERR_PAIRING_ALREADY_PAIRED');
    // At most 3 guesses per code, counting the ones still running.
    if (s.failures + s.inFlight >= PAIRING_MAX_FAILED_ATTEMPTS) return this.#fail(stream, 'ERR_PAIRING_BUSY');
    // Taken now, before anything awaits: concurrent Starts must see it.
    s.inFlight++;
    try {
      await this.#ctx.commands.startPairing(peer);
    } catch {
      // The peer is in the middle of another pairing with us (or discovered-state churn).
      s.inFlight--;
      return this.#fail(stream, 'ERR_PAIRING_BUSY');
    }
    if (s.state !== 'waiting') {
      s.inFlight--;
      await this.#ctx.commands.failPairing(peer).catch(() => undefined);
      return this.#fail(stream, this.#endedR.get(s.r) ?? 'ERR_PAIRING_NOT_FOUND');
    }
    let claimed = false;
    const peerLabel = { endpointId: peer.toString() };
    this.#progress({ sessionId: s.id, role: 'initiator', stage: 'peer-found', peer: peerLabel });
    let exchange: InitiatorExchange | undefined;
    try {
      const secret = s.code.secret();
      try {
        exchange = new InitiatorExchange({ secret, binding: bindingOf(c.connection, this.#ctx.identity.endpointId, 'initiator'), own: this.#own() });
      } finally {
        secret.fill(0);
      }
      await this.#write(stream, exchange.onStart(start));
      const next = await this.#read(stream);
      if (next === undefined) throw new PairingError('ERR_PAIRING_PROTOCOL', 'the joiner left before confirming');
      if ('Abort' in next) throw new PairingError(isPairingErrorCode(next.Abort.code) ? next.Abort.code : 'ERR_PAIRING_PROTOCOL');
      if (!('Confirm' in next)) throw new PairingError('ERR_PAIRING_PROTOCOL', `${pairMessageType(next)} instead of Confirm`);
      const { outcome, done } = exchange.onConfirm(next.Confirm);
      // `s.peer` is set once a joiner has confirmed: the code is spent even while Done is
      // still being written (the state flips to `paired` after that).
      if (s.state !== 'waiting' || s.peer !== undefined) {
        // Cancelled or expired while this exchange ran, or another joiner used the code.
        outcome.linkKey.fill(0);
        s.inFlight--;
        claimed = true;
        await this.#ctx.commands.failPairing(peer).catch(() => undefined);
        return this.#fail(stream, this.#endedR.get(s.r) ?? 'ERR_PAIRING_CODE_USED');
      }
      claimed = true;
      s.inFlight--;
      s.peer = { endpointId: peer.toString(), name: outcome.info.name };
      this.#progress({ sessionId: s.id, role: 'initiator', stage: 'key-confirmed', peer: s.peer });
      const device = await this.#ctx.commands.completePairing({ id: peer, info: outcome.info, linkKey: outcome.linkKey, addr: outcome.addr });
      outcome.linkKey.fill(0);
      // Paired on our side; the joiner stores us when Done arrives. Done is written before the
      // invite reports `paired`: a CLI that exits on that report must not cut Done off.
      try {
        const bound = new AbortController();
        await Promise.race([
          (async () => {
            await this.#write(stream, done);
            await stream.finish();
          })(),
          delay(PAIRING_DONE_WRITE_MS, bound.signal).then(() => {
            throw new Error(`Done not written within ${PAIRING_DONE_WRITE_MS} ms`);
          }),
        ]).finally(() => bound.abort());
      } catch (err) {
        this.#ctx.log.warn('pairing: the joiner left before Done arrived', { peer: peer.fmtShort(), error: String(err) });
      } finally {
        this.#endInvite(s, 'paired', undefined, device);
      }
    } catch (err) {
      exchange?.destroy();
      if (claimed) throw err;
      s.inFlight--;
      await this.#ctx.commands.failPairing(peer).catch(() => undefined);
      const e = asPairingError(err);
      // Every exchange that got past Start is a guess, whatever ended it.
      s.failures++;
      const left = Math.max(0, PAIRING_MAX_FAILED_ATTEMPTS - s.failures);
      s.error = { code: e.code, message: e.message };
      this.#progress({ sessionId: s.id, role: 'initiator', stage: 'failed', peer: peerLabel, error: { code: e.code, message: e.message }, attemptsLeft: left });
      if (s.failures >= PAIRING_MAX_FAILED_ATTEMPTS) this.#endInvite(s, 'burnt', new PairingError('ERR_PAIRING_BURNT'));
      await this.#fail(stream, e.code);
    }
  }

  // ================================================================== joiner

  async startAsJoiner(input: string, options: { signal?: AbortSignal; nodeId?: string; timeoutMs?: number; [k: string]: unknown } = {}): Promise<DeviceSnapshot> {
    // Local checks first: a typo never reaches the network.
    const ticket = parsePairingInput(input, options.nodeId);
    if (this.#stopped) throw new SdnetError('ERR_SERVICE_STOPPED', 'The service is shutting down');
    const j: JoinSession = { id: newId(), r: ticket.code.rendezvousId, createdAt: Date.now(), state: 'searching', stop: new AbortController(), peer: undefined, error: undefined };
    this.#joins.set(j.id, j);
    const timeoutMs = typeof options.timeoutMs === 'number' && options.timeoutMs > 0 ? options.timeoutMs : (this.#options.joinTimeoutMs ?? 30_000);
    const { signal, dispose } = linkedSignal([options.signal, j.stop.signal], timeoutMs, () => new PairingError('ERR_PAIRING_TIMEOUT', `pairing timed out after ${timeoutMs} ms`));
    this.#progress({ sessionId: j.id, role: 'joiner', stage: 'searching', rendezvousId: j.r });
    try {
      const device = await this.#join(j, ticket, signal);
      j.state = 'paired';
      this.#progress({ sessionId: j.id, role: 'joiner', stage: 'paired', ...(j.peer ? { peer: j.peer } : {}) });
      return device;
    } catch (err) {
      const e = asPairingError(err);
      j.state = e.code === 'ERR_PAIRING_CANCELLED' ? 'cancelled' : 'failed';
      j.error = { code: e.code, message: e.message };
      this.#progress({ sessionId: j.id, role: 'joiner', stage: j.state, error: j.error, ...(j.peer ? { peer: j.peer } : {}) });
      throw e;
    } finally {
      dispose();
      j.stop.abort();
      ticket.code.destroy();
      this.#joins.delete(j.id);
      this.#remember(this.#joinStatus(j));
    }
  }

  async #join(j: JoinSession, ticket: PairingTicket, signal: AbortSignal): Promise<DeviceSnapshot> {
    const queue: EndpointAddr[] = [];
    let wake: (() => void) | undefined;
    const push = (addr: EndpointAddr): void => {
      if (ticket.nodeId !== undefined && !addr.id.equals(ticket.nodeId)) return;
      if (addr.isEmpty) return;
      queue.push(addr);
      wake?.();
    };
    const firstAnswers: Promise<void>[] = [];
    // The sources (an mDNS lookup runs until its signal ends) stop as soon as this join ends,
    // paired or not: waiting on them held a successful join until its timeout.
    const stopSources = new AbortController();
    const sources = this.#findInitiator(ticket, AbortSignal.any([signal, stopSources.signal]), push, firstAnswers);
    const triedIds = new Set<string>();
    const triedAddrs = new Set<string>();
    let last: PairingError | undefined;
    try {
      for (;;) {
        if (queue.length === 0) {
          if (signal.aborted) {
            const reason = abortReason(signal);
            if (reason instanceof PairingError && reason.code === 'ERR_PAIRING_CANCELLED') throw reason;
            throw last ?? new PairingError('ERR_PAIRING_NOT_FOUND');
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            signal.addEventListener('abort', () => resolve(), { once: true });
          });
          wake = undefined;
          continue;
        }
        const addr = queue.shift()!;
        const id = addr.id.toString();
        const key = `${id} ${addr.relayUrls.join(',')} ${addr.directAddresses.join(',')}`;
        if (triedIds.has(id) || triedAddrs.has(key)) continue;
        triedAddrs.add(key);
        j.state = 'exchanging';
        j.peer = { endpointId: id };
        this.#progress({ sessionId: j.id, role: 'joiner', stage: 'peer-found', peer: j.peer });
        try {
          return await this.#attempt(j, ticket, addr, signal, () => triedIds.add(id));
        } catch (err) {
          last = asPairingError(err);
          this.#ctx.log.debug('pairing: attempt failed', { peer: addr.id.fmtShort(), code: last.code });
          if (last.code === 'ERR_PAIRING_CANCELLED') throw last;
          j.state = 'searching';
          if (last.code === 'ERR_PAIRING_BUSY') {
            // The initiator is busy (another try running, or a flood): ask again shortly.
            triedIds.delete(id);
            triedAddrs.delete(key);
            void delay(500, signal).then(() => push(addr), () => undefined);
            continue;
          }
          // An unreachable candidate, or another device answering for R: keep looking. Before
          // giving up, let every relay answer once: one may hold a forged record, another the
          // real one.
          if (queue.length === 0 && last.code !== 'ERR_PAIRING_UNREACHABLE') await Promise.race([Promise.all(firstAnswers), new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))]);
          if (queue.length > 0 || last.code === 'ERR_PAIRING_UNREACHABLE') continue;
          throw last;
        }
      }
    } finally {
      stopSources.abort();
      await sources;
    }
  }

  /** Start every source of candidates; resolves when all have stopped (signal). */
  #findInitiator(ticket: PairingTicket, signal: AbortSignal, push: (addr: EndpointAddr) => void, firstAnswers: Promise<void>[]): Promise<unknown> {
    const tasks: Promise<unknown>[] = [];
    // (c) QR / --node-id: dial what the payload says.
    if (ticket.nodeId !== undefined) {
      const relays = ticket.relay !== undefined ? [ticket.relay] : [];
      try {
        const direct = EndpointAddr.from({ id: ticket.nodeId, relayUrls: relays, directAddresses: ticket.addrs ?? [] });
        if (!direct.isEmpty) push(direct);
        // Only an id: our own relays may know it (a relay in common).
        else if (this.#ctx.relays.length > 0) push(EndpointAddr.from({ id: ticket.nodeId, relayUrls: this.#ctx.relays.slice(0, 2) }));
      } catch (err) {
        this.#ctx.log.debug('pairing: unusable QR address', { error: String(err) });
      }
    }
    // (a) LAN discovery.
    for (const d of this.#options.discovery ?? []) {
      tasks.push(
        (async () => {
          try {
            for await (const addr of d.lookup(ticket.code.rendezvousId, signal)) push(addr);
          } catch (err) {
            if (!signal.aborted) this.#ctx.log.warn('pairing: LAN lookup failed', { discovery: d.name, error: String(err) });
          }
        })(),
      );
    }
    // (b) The relays' rendezvous: typed words across networks.
    if (this.#options.rendezvous !== false) {
      const relays = [...new Set([...this.#ctx.relays, ...(ticket.relay !== undefined ? [ticket.relay] : [])])];
      for (const relay of relays) {
        let answered!: () => void;
        firstAnswers.push(new Promise<void>((resolve) => (answered = resolve)));
        tasks.push(this.#pollRendezvous(relay, ticket.code.rendezvousId, signal, push, answered).finally(answered));
      }
    }
    return Promise.allSettled(tasks);
  }

  async #pollRendezvous(relay: string, r: string, signal: AbortSignal, push: (addr: EndpointAddr) => void, answered: () => void): Promise<void> {
    let wait = this.#options.lookupIntervalMs ?? 200;
    while (!signal.aborted) {
      try {
        const record = await lookupRendezvous(relay, r, { signal, ...this.#tlsOptions() });
        if (record !== undefined) {
          try {
            push(EndpointAddr.from({ id: record.endpointId, relayUrls: record.relay !== null ? [record.relay] : [], directAddresses: record.addrs }));
          } catch {
            // not an address we can use
          }
          return;
        }
      } catch (err) {
        if (signal.aborted) return;
        this.#ctx.log.debug('pairing: rendezvous lookup failed', { relay, error: String((err as Error).message) });
        wait = Math.max(wait, 1000);
      } finally {
        // After any push: whoever waits for the first answers sees what they brought.
        answered();
      }
      try {
        await delay(wait, signal);
      } catch {
        return;
      }
      wait = Math.min(wait * 2, 1000);
    }
  }

  /** One exchange with one candidate. */
  async #attempt(j: JoinSession, ticket: PairingTicket, addr: EndpointAddr, signal: AbortSignal, reachedPeer: () => void): Promise<DeviceSnapshot> {
    let conn: Connection;
    try {
      conn = await this.#ctx.dial(addr, PAIR_ALPN, { signal, timeoutMs: PAIRING_ATTEMPT_TIMEOUT_MS });
    } catch (err) {
      if (signal.aborted) throw asPairingError(abortReason(signal), 'ERR_PAIRING_CANCELLED');
      throw new PairingError('ERR_PAIRING_UNREACHABLE', `cannot reach ${addr.id.fmtShort()}: ${(err as Error).message}`, { cause: err });
    }
    reachedPeer();
    const peer = conn.remoteId;
    let started = false;
    let ending = false;
    let exchange: JoinerExchange | undefined;
    const { signal: attemptSignal, dispose } = linkedSignal([signal], PAIRING_ATTEMPT_TIMEOUT_MS, () => new PairingError('ERR_PAIRING_TIMEOUT', 'the initiator did not finish the exchange in time'));
    let stream: FramedStream | undefined;
    try {
      stream = new FramedStream(await conn.openBi({ signal: attemptSignal }), { maxMessageBytes: PAIRING_MAX_MESSAGE_BYTES, idleTimeoutMs: PAIRING_STREAM_IDLE_TIMEOUT_MS, signal: attemptSignal });
      if (this.#ctx.registry.isPaired(peer)) throw new PairingError('ERR_PAIRING_ALREADY_PAIRED');
      try {
        await this.#ctx.commands.startPairing(peer, addr);
        started = true;
      } catch {
        throw new PairingError('ERR_PAIRING_BUSY', 'a pairing with this device is already running');
      }
      const secret = ticket.code.secret();
      try {
        exchange = new JoinerExchange({ secret, rendezvousId: ticket.code.rendezvousId, binding: bindingOf(conn, this.#ctx.identity.endpointId, 'joiner'), own: this.#own() });
      } finally {
        secret.fill(0);
      }
      await this.#write(stream, exchange.start());
      const reply = await this.#read(stream);
      if (reply === undefined) throw new PairingError('ERR_PAIRING_PROTOCOL', 'the initiator closed the stream');
      if ('Fail' in reply) throw new PairingError(isPairingErrorCode(reply.Fail.code) ? reply.Fail.code : 'ERR_PAIRING_PROTOCOL');
      if (!('Reply' in reply)) throw new PairingError('ERR_PAIRING_PROTOCOL', `${pairMessageType(reply)} instead of Reply`);
      let confirm: PairMessage;
      try {
        confirm = exchange.onReply(reply.Reply);
      } catch (err) {
        // Tell the initiator (it counts the try), then fail; nothing keyed was sent.
        const e = asPairingError(err);
        try {
          await this.#write(stream, { Abort: { code: e.code } });
          await stream.finish();
        } catch {
          // gone
        }
        throw e;
      }
      await this.#write(stream, confirm);
      const done = await this.#read(stream);
      if (done === undefined) throw new PairingError('ERR_PAIRING_PROTOCOL', 'the initiator closed the stream');
      if ('Fail' in done) throw new PairingError(isPairingErrorCode(done.Fail.code) ? done.Fail.code : 'ERR_PAIRING_PROTOCOL');
      if (!('Done' in done)) throw new PairingError('ERR_PAIRING_PROTOCOL', `${pairMessageType(done)} instead of Done`);
      const outcome = exchange.onDone(done.Done);
      j.peer = { endpointId: peer.toString(), name: outcome.info.name };
      this.#progress({ sessionId: j.id, role: 'joiner', stage: 'key-confirmed', peer: j.peer });
      // The address we reached it at, and what it told us.
      const merged = EndpointAddr.from({
        id: peer,
        relayUrls: [...new Set([...outcome.addr.relayUrls.map(String), ...addr.relayUrls.map(String)])].slice(0, 4),
        directAddresses: [...new Set([...addr.directAddresses.map(String), ...outcome.addr.directAddresses.map(String)])].slice(0, 12),
      });
      const device = await this.#ctx.commands.completePairing({ id: peer, info: outcome.info, linkKey: outcome.linkKey, addr: merged });
      outcome.linkKey.fill(0);
      started = false;
      // Paired. End the stream cleanly in the background — our FIN, theirs (bounded), then
      // the connection — rather than make the caller wait for it.
      ending = true;
      void this.#track(
        (async () => {
          const linger = new AbortController();
          try {
            await stream.finish();
            await Promise.race([stream.read(), delay(1000, linger.signal)]);
          } catch {
            // done anyway
          } finally {
            linger.abort();
            stream.close();
            conn.close(CloseCode.NORMAL, 'pairing over');
          }
        })(),
      );
      return device;
    } catch (err) {
      exchange?.destroy();
      if (attemptSignal.aborted && !(err instanceof PairingError)) throw asPairingError(abortReason(attemptSignal), 'ERR_PAIRING_TIMEOUT');
      throw err;
    } finally {
      dispose();
      if (started) await this.#ctx.commands.failPairing(peer).catch(() => undefined);
      if (!ending) {
        stream?.close();
        conn.close(CloseCode.NORMAL, 'pairing over');
      }
    }
  }

  // ================================================================== vouching

  async vouch(vouchee: DeviceSnapshot, targets: readonly DeviceSnapshot[], options: { signal?: AbortSignal } = {}): Promise<VouchResult[]> {
    const results: VouchResult[] = [];
    for (const target of targets) {
      const label = { endpointId: target.endpointId, ...(target.name !== undefined ? { name: target.name } : {}) };
      try {
        await this.#vouchOne(vouchee, target, options.signal);
        results.push({ target: label, accepted: true });
      } catch (err) {
        const e = errorOf(err);
        results.push({ target: label, accepted: false, error: e });
      }
    }
    return results;
  }

  async #exchangeOn(device: string, message: PairMessage, timeoutMs: number, signal: AbortSignal | undefined): Promise<PairMessage | undefined> {
    const { signal: s, dispose } = linkedSignal([signal], timeoutMs, () => new PairingError('ERR_PAIRING_TIMEOUT', 'no answer in time'));
    try {
      const conn = await this.#ctx.connect(device, PAIR_ALPN, { signal: s });
      const stream = new FramedStream(await conn.openBi({ signal: s }), { maxMessageBytes: PAIRING_MAX_MESSAGE_BYTES, idleTimeoutMs: timeoutMs, signal: s });
      try {
        await this.#write(stream, message);
        await stream.finish();
        for (;;) {
          const m = await this.#read(stream);
          // The peer is asking its user: it says so now and then.
          if (m !== undefined && 'Wait' in m) continue;
          return m;
        }
      } finally {
        stream.close();
      }
    } catch (err) {
      if (s.aborted) throw asPairingError(abortReason(s), 'ERR_PAIRING_TIMEOUT');
      throw err;
    } finally {
      dispose();
    }
  }

  async #vouchOne(vouchee: DeviceSnapshot, target: DeviceSnapshot, signal: AbortSignal | undefined): Promise<void> {
    if (vouchee.endpointId === target.endpointId) throw new PairingError('ERR_VOUCH_FAILED', 'a device cannot be introduced to itself');
    if (vouchee.info === undefined || target.info === undefined) throw new PairingError('ERR_VOUCH_FAILED', 'device info unknown');
    const me = this.#ctx.identity.endpointId;
    const id = newId();
    const sessionLabel = { sessionId: id, role: 'voucher' as const };
    this.#progress({ ...sessionLabel, stage: 'vouch-started', peer: { endpointId: target.endpointId } });
    const voucheeId = PublicKey.fromString(vouchee.endpointId);
    const targetId = PublicKey.fromString(target.endpointId);
    const voucheeWire = wireDevice(voucheeId, vouchee.info, { relayUrls: [...vouchee.addr.relayUrls], directAddresses: [...vouchee.addr.directAddresses] });
    const issuedAt = Date.now();
    const intro: PairMessage = { Introduce: { id, vouchee: voucheeWire, issued_at: issuedAt, sig: this.#ctx.identity.sign(introductionBytes('introduce', id, me, voucheeWire, targetId, issuedAt)) } };
    const reply = await this.#exchangeOn(target.endpointId, intro, VOUCH_CONFIRM_TIMEOUT_MS + PAIRING_ATTEMPT_TIMEOUT_MS, signal);
    if (reply === undefined || !('IntroduceReply' in reply) || reply.IntroduceReply.id !== id) {
      if (reply !== undefined && 'Fail' in reply) throw new PairingError('ERR_VOUCH_REFUSED', `the target refused: ${reply.Fail.code}`);
      throw new PairingError('ERR_VOUCH_FAILED', 'the target did not answer the introduction');
    }
    if (!reply.IntroduceReply.accepted) throw new PairingError('ERR_VOUCH_REFUSED', `the target refused${reply.IntroduceReply.reason ? `: ${reply.IntroduceReply.reason}` : ''}`);
    // Tell the vouchee about the target (what we know of it, and the addresses it just told us).
    const told = reply.IntroduceReply.target !== null ? readWireDevice(reply.IntroduceReply.target) : undefined;
    const targetWire = wireDevice(targetId, target.info, {
      relayUrls: [...new Set([...(told?.addr.relayUrls.map(String) ?? []), ...target.addr.relayUrls])],
      directAddresses: [...new Set([...(told?.addr.directAddresses.map(String) ?? []), ...target.addr.directAddresses])],
    });
    const issued2 = Date.now();
    const introduced: PairMessage = { Introduced: { id, target: targetWire, issued_at: issued2, sig: this.#ctx.identity.sign(introductionBytes('introduced', id, me, targetWire, voucheeId, issued2)) } };
    const ack = await this.#exchangeOn(vouchee.endpointId, introduced, 3 * PAIRING_ATTEMPT_TIMEOUT_MS, signal);
    if (ack === undefined || !('IntroducedReply' in ack) || ack.IntroducedReply.id !== id || !ack.IntroducedReply.ok) {
      throw new PairingError('ERR_VOUCH_FAILED', 'the vouchee could not complete the introduction');
    }
    this.#progress({ ...sessionLabel, stage: 'vouched', peer: { endpointId: target.endpointId } });
  }

  confirmVouch(introductionId: string, accept: boolean): boolean {
    const a = this.#awaiting.get(introductionId);
    if (a === undefined) return false;
    this.#awaiting.delete(introductionId);
    a.resolve(accept);
    return true;
  }

  /** The target side of step 1. */
  async #serveIntroduce(stream: FramedStream, c: ConnectionContext, m: { id: string; vouchee: WireDevice; issued_at: number; sig: Uint8Array }): Promise<void> {
    const voucher = c.remoteId;
    const me = this.#ctx.identity.endpointId;
    const refuse = (reason: string): Promise<void> => this.#replyAndFinish(stream, { IntroduceReply: { id: m.id, accepted: false, reason, target: null } });
    // Only a device we paired may introduce, and only with its own signature.
    if (!this.#ctx.registry.isPaired(voucher)) return this.#fail(stream, 'ERR_VOUCH_REFUSED');
    if (!NetworkIdentity.verify(voucher, introductionBytes('introduce', m.id, voucher, m.vouchee, me, m.issued_at), m.sig)) return this.#fail(stream, 'ERR_VOUCH_REFUSED');
    if (Math.abs(Date.now() - m.issued_at) > VOUCH_MAX_AGE_MS) return refuse('the introduction is stale');
    const vouchee = readWireDevice(m.vouchee);
    if (vouchee === undefined) return refuse('the introduced device is malformed');
    if (vouchee.id.equals(me) || vouchee.id.equals(voucher)) return refuse('the introduced device is one of us');
    if (this.#ctx.registry.isPaired(vouchee.id)) return refuse('already paired');
    if (this.#pendingIntros.size + this.#awaiting.size >= VOUCH_MAX_PENDING || this.#awaiting.has(m.id) || this.#pendingIntros.has(m.id)) return refuse('too many introductions');
    const voucherName = this.#ctx.registry.get(voucher)?.name;
    let accepted = this.#options.autoAcceptVouches === true;
    if (!accepted) {
      this.#progress({
        sessionId: m.id,
        role: 'target',
        stage: 'vouch-requested',
        peer: { endpointId: vouchee.id.toString(), name: vouchee.info.name },
        voucher: { endpointId: voucher.toString(), ...(voucherName !== undefined ? { name: voucherName } : {}) },
        expiresAt: Date.now() + VOUCH_CONFIRM_TIMEOUT_MS,
      });
      // Keep the stream alive while the user decides (its idle timeout is short).
      const keepAlive = setInterval(() => void this.#write(stream, { Wait: { id: m.id } }).catch(() => undefined), Math.floor(PAIRING_STREAM_IDLE_TIMEOUT_MS / 3));
      keepAlive.unref?.();
      accepted = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          this.#awaiting.delete(m.id);
          resolve(false);
        }, VOUCH_CONFIRM_TIMEOUT_MS);
        timer.unref?.();
        const onAbort = (): void => {
          clearTimeout(timer);
          this.#awaiting.delete(m.id);
          resolve(false);
        };
        c.signal.addEventListener('abort', onAbort, { once: true });
        this.#awaiting.set(m.id, {
          id: m.id,
          resolve: (v) => {
            clearTimeout(timer);
            c.signal.removeEventListener('abort', onAbort);
            resolve(v);
          },
        });
      }).finally(() => clearInterval(keepAlive));
    }
    if (!accepted) {
      this.#progress({ sessionId: m.id, role: 'target', stage: 'vouch-refused', peer: { endpointId: vouchee.id.toString(), name: vouchee.info.name } });
      return refuse('not accepted');
    }
    this.#pendingIntros.set(m.id, { id: m.id, voucher, vouchee, expiresAt: Date.now() + VOUCH_MAX_AGE_MS });
    const own = this.#own();
    await this.#replyAndFinish(stream, { IntroduceReply: { id: m.id, accepted: true, reason: null, target: wireDevice(me, own.info, { relayUrls: own.addr.relay_urls, directAddresses: own.addr.direct_addresses }) } });
  }

  async #replyAndFinish(stream: FramedStream, m: PairMessage): Promise<void> {
    try {
      await this.#write(stream, m);
      await stream.finish();
    } catch {
      // gone
    }
  }

  /** The vouchee side of step 2 and 3: dial the target, derive the key, store it. */
  async #serveIntroduced(stream: FramedStream, c: ConnectionContext, m: { id: string; target: WireDevice; issued_at: number; sig: Uint8Array }): Promise<void> {
    const voucher = c.remoteId;
    const me = this.#ctx.identity.endpointId;
    const nope = (): Promise<void> => this.#replyAndFinish(stream, { IntroducedReply: { id: m.id, ok: false } });
    if (!this.#ctx.registry.isPaired(voucher)) return this.#fail(stream, 'ERR_VOUCH_REFUSED');
    if (!NetworkIdentity.verify(voucher, introductionBytes('introduced', m.id, voucher, m.target, me, m.issued_at), m.sig)) return this.#fail(stream, 'ERR_VOUCH_REFUSED');
    if (Math.abs(Date.now() - m.issued_at) > VOUCH_MAX_AGE_MS) return nope();
    const target = readWireDevice(m.target);
    if (target === undefined || target.id.equals(me) || target.id.equals(voucher) || this.#ctx.registry.isPaired(target.id)) return nope();
    try {
      await this.#completeVouchAsVouchee(m.id, voucher, target, c.signal);
      await this.#replyAndFinish(stream, { IntroducedReply: { id: m.id, ok: true } });
    } catch (err) {
      this.#ctx.log.warn('pairing: introduction failed', { target: target.id.fmtShort(), error: String((err as Error).message) });
      await nope();
    }
  }

  async #completeVouchAsVouchee(id: string, voucher: PublicKey, target: IntroducedDevice, parent: AbortSignal): Promise<void> {
    const conn = await this.#ctx.dial(target.addr, PAIR_ALPN, { signal: parent, timeoutMs: PAIRING_ATTEMPT_TIMEOUT_MS });
    let started = false;
    try {
      await this.#ctx.commands.startPairing(target.id, target.addr);
      started = true;
      const { signal, dispose } = linkedSignal([parent], PAIRING_ATTEMPT_TIMEOUT_MS);
      const stream = new FramedStream(await conn.openBi({ signal }), { maxMessageBytes: PAIRING_MAX_MESSAGE_BYTES, idleTimeoutMs: PAIRING_STREAM_IDLE_TIMEOUT_MS, signal });
      try {
        await this.#write(stream, { VouchHello: { id, voucher: voucher.toString() } });
        await stream.finish();
        const answer = await this.#read(stream);
        if (answer === undefined || !('VouchDone' in answer) || answer.VouchDone.id !== id) throw new PairingError('ERR_VOUCH_REFUSED', 'the target refused the vouched connection');
      } finally {
        stream.close();
        dispose();
      }
      const linkKey = vouchedLinkKey(conn, id, voucher, this.#ctx.identity.endpointId, target.id);
      await this.#ctx.commands.completePairing({ id: target.id, info: target.info, linkKey, addr: target.addr });
      linkKey.fill(0);
      started = false;
      this.#progress({ sessionId: id, role: 'vouchee', stage: 'paired', peer: { endpointId: target.id.toString(), name: target.info.name } });
    } finally {
      if (started) await this.#ctx.commands.failPairing(target.id).catch(() => undefined);
      conn.close(CloseCode.NORMAL, 'vouch over');
    }
  }

  /** The target side of step 3: the vouchee we accepted dials us. */
  async #serveVouchHello(stream: FramedStream, c: ConnectionContext, m: { id: string; voucher: string }): Promise<void> {
    const p = this.#pendingIntros.get(m.id);
    const peer = c.remoteId;
    if (p === undefined || !p.vouchee.id.equals(peer) || p.voucher.toString() !== m.voucher || Date.now() > p.expiresAt) return this.#fail(stream, 'ERR_VOUCH_REFUSED');
    // Single use.
    this.#pendingIntros.delete(m.id);
    if (this.#ctx.registry.isPaired(peer)) return this.#fail(stream, 'ERR_PAIRING_ALREADY_PAIRED');
    const linkKey = vouchedLinkKey(c.connection, m.id, p.voucher, peer, this.#ctx.identity.endpointId);
    try {
      await this.#ctx.commands.completePairing({ id: peer, info: p.vouchee.info, linkKey, addr: p.vouchee.addr });
    } catch (err) {
      this.#ctx.log.warn('pairing: storing a vouched device failed', { error: String(err) });
      return this.#fail(stream, 'ERR_VOUCH_FAILED');
    } finally {
      linkKey.fill(0);
    }
    this.#progress({ sessionId: m.id, role: 'target', stage: 'paired', peer: { endpointId: peer.toString(), name: p.vouchee.info.name } });
    await this.#replyAndFinish(stream, { VouchDone: { id: m.id } });
  }

  // ================================================================== lifecycle

  async shutdown(): Promise<void> {
    this.#stopped = true;
    for (const s of [...this.#invites.values()]) this.#endInvite(s, 'cancelled', new PairingError('ERR_PAIRING_CANCELLED', 'the service is shutting down'));
    for (const j of this.#joins.values()) j.stop.abort(new PairingError('ERR_PAIRING_CANCELLED', 'the service is shutting down'));
    for (const a of [...this.#awaiting.values()]) a.resolve(false);
    this.#awaiting.clear();
    // Withdrawals (R must not stay registered), bounded.
    const bound = new AbortController();
    await Promise.race([Promise.allSettled([...this.#background]), delay(2000, bound.signal).catch(() => undefined)]);
    bound.abort();
  }
}

export type { WireAddr };
