/**
 * `ProtocolRegistry`: the device-layer protocols by ALPN, each with its limits (largest
 * message, streams served at once, stream idle timeout) and whether unpaired peers may reach
 * it — only pairing may. It builds the {@link Router} of the endpoint: every ALPN is
 * registered before the endpoint accepts anything, and a connection from an unpaired
 * EndpointId on any other ALPN is closed with {@link CloseCode.NOT_PAIRED} in the router's
 * after-handshake hook, before any handler code runs.
 *
 * It also serves the streams a peer opens on a connection, concurrently (Spacedrive served
 * them one at a time, spacedrive-net.md §1.4), up to the protocol's limit; a stream that
 * breaks the protocol's rules is reset with its stream code and logged, and nothing else on
 * the connection is affected.
 *
 * @module
 */
import type { Connection } from '../endpoint/connection.ts';
import type { Endpoint } from '../endpoint/endpoint.ts';
import type { BiStream } from '../endpoint/streams.ts';
import type { PublicKey } from '../identity/keys.ts';
import { CloseCode, StreamCode, streamCodeName } from '../protocols/codes.ts';
import { StreamProtocolError } from '../protocols/framing.ts';
import { Router, type AfterHandshakeOutcome, type RouterEvent } from '../protocols/router.ts';
import { FramedStream, StreamIdleError } from '../protocols/stream.ts';
import { ConnectionError } from '../transport/quic/connection/types.ts';
import { StreamResetError } from '../endpoint/streams.ts';
import { SdnetError } from '../util/errors.ts';
import { abortReason, abortable } from '../util/abort.ts';
import type { Logger } from '../util/log.ts';

/** What a protocol allows one peer per connection. */
export interface ProtocolLimits {
  /** Largest frame (bytes), checked before allocation. */
  readonly maxMessageBytes: number;
  /** Streams of one connection served at once; more wait (QUIC's stream limit holds the peer back). */
  readonly maxConcurrentStreams: number;
  /** A stream silent this long is reset (ms). */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_PROTOCOL_LIMITS: ProtocolLimits = { maxMessageBytes: 1024 * 1024, maxConcurrentStreams: 64, idleTimeoutMs: 30_000 };

/** What a protocol handler knows about the connection it serves. */
export interface ConnectionContext {
  readonly connection: Connection;
  /** The peer's authenticated EndpointId. */
  readonly remoteId: PublicKey;
  readonly alpn: string;
  /** `'client'`: we dialled; `'server'`: the peer did. */
  readonly side: 'client' | 'server';
  readonly limits: ProtocolLimits;
  /** Aborted when the connection closes or the service shuts down. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/** A device-layer protocol. */
export interface DeviceProtocol {
  readonly alpn: string;
  /** May peers that are not paired reach it? Only pairing should say yes. Default false. */
  readonly allowUnpaired?: boolean;
  readonly limits?: Partial<ProtocolLimits>;
  /** A connection on this ALPN is up (the peer's or ours), before its streams are served. */
  connectionOpened?(ctx: ConnectionContext): void;
  /** Serve one bidirectional stream the peer opened. Throw a {@link StreamProtocolError} to reset it with a code. */
  handleStream(stream: FramedStream, ctx: ConnectionContext): Promise<void>;
  /** The service is shutting down. */
  shutdown?(): Promise<void> | void;
}

/** Connections the registry's router accepted, for the service to take over. */
export type ConnectionSink = (connection: Connection, protocol: RegisteredProtocol) => Promise<void>;

/** A protocol with its limits filled in. */
export interface RegisteredProtocol {
  readonly protocol: DeviceProtocol;
  readonly alpn: string;
  readonly limits: ProtocolLimits;
  readonly allowUnpaired: boolean;
}

export class ProtocolRegistry {
  readonly #protocols = new Map<string, RegisteredProtocol>();
  #sealed = false;

  /**
   * Add a protocol. Only before the service starts: the router registers every ALPN at once.
   *
   * @throws {SdnetError} `ERR_PROTOCOL_REGISTRY_SEALED` after start, `ERR_ALPN_REGISTERED` for a duplicate
   */
  register(protocol: DeviceProtocol): void {
    if (this.#sealed) throw new SdnetError('ERR_PROTOCOL_REGISTRY_SEALED', `Cannot register ${protocol.alpn}: the service already started (register protocols before start)`);
    if (this.#protocols.has(protocol.alpn)) throw new SdnetError('ERR_ALPN_REGISTERED', `ALPN "${protocol.alpn}" is already registered`);
    const limits = { ...DEFAULT_PROTOCOL_LIMITS, ...protocol.limits };
    for (const [k, v] of Object.entries(limits)) if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Protocol limit ${k} must be a non-negative integer`);
    if (limits.maxConcurrentStreams < 1) throw new RangeError('maxConcurrentStreams must be at least 1');
    this.#protocols.set(protocol.alpn, { protocol, alpn: protocol.alpn, limits, allowUnpaired: protocol.allowUnpaired === true });
  }

  get(alpn: string): RegisteredProtocol | undefined {
    return this.#protocols.get(alpn);
  }

  get alpns(): string[] {
    return [...this.#protocols.keys()];
  }

  get isSealed(): boolean {
    return this.#sealed;
  }

  /**
   * The gate, run after the TLS handshake proved `remoteId` and before any handler: an
   * unpaired peer reaches only protocols that allow it.
   */
  admit(remoteId: PublicKey, alpn: string, isPaired: (id: PublicKey) => boolean): AfterHandshakeOutcome {
    const p = this.#protocols.get(alpn);
    if (p === undefined) return { accept: false, code: CloseCode.REFUSED, reason: 'unknown protocol' };
    if (!p.allowUnpaired && !isPaired(remoteId)) return { accept: false, code: CloseCode.NOT_PAIRED, reason: 'not paired' };
    return { accept: true };
  }

  /**
   * Seal the registry and build the endpoint's router: every registered ALPN, the pairing
   * gate, and `sink` receiving each admitted connection.
   */
  buildRouter(endpoint: Endpoint, options: { isPaired: (id: PublicKey) => boolean; sink: ConnectionSink; onEvent?: (event: RouterEvent) => void }): Router {
    this.#sealed = true;
    let builder = Router.builder(endpoint).afterHandshake(({ remoteId, alpn }) => this.admit(remoteId, alpn, options.isPaired));
    if (options.onEvent) builder = builder.onEvent(options.onEvent);
    for (const p of this.#protocols.values()) {
      builder = builder.accept(p.alpn, {
        accept: (connection) => options.sink(connection, p),
        shutdown: () => p.protocol.shutdown?.(),
      });
    }
    return builder.spawn();
  }

  /**
   * Serve the bidirectional streams the peer opens on `ctx.connection` with `registered`'s
   * handler, at most `maxConcurrentStreams` at once, until the connection closes or
   * `ctx.signal` aborts. Unidirectional streams are not part of these protocols: each is
   * stopped at once (STOP_SENDING) so they cannot pile up.
   */
  static async serve(registered: RegisteredProtocol, ctx: ConnectionContext): Promise<void> {
    const { connection, limits } = ctx;
    const refuseUni = (async () => {
      for (;;) {
        let uni: ReadableStream<Uint8Array>;
        try {
          uni = await connection.acceptUni({ signal: ctx.signal });
        } catch {
          return;
        }
        void uni.cancel({ streamCode: StreamCode.UNKNOWN_MESSAGE }).catch(() => undefined);
      }
    })();
    // The streams being served: one timer sweeps them for idleness and one listener aborts
    // them with the connection (nothing per stream).
    const live = new Set<FramedStream>();
    const sweeper =
      limits.idleTimeoutMs > 0
        ? setInterval(
            () => {
              const now = performance.now();
              for (const s of live) if (now - s.lastActivity >= limits.idleTimeoutMs) s.abort(new StreamIdleError(limits.idleTimeoutMs));
            },
            Math.max(50, Math.min(1000, limits.idleTimeoutMs / 4)),
          )
        : undefined;
    sweeper?.unref?.();
    const onAbort = (): void => {
      for (const s of live) s.abort(abortReason(ctx.signal));
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    let active = 0;
    const slotWaiters: (() => void)[] = [];
    const running = new Set<Promise<void>>();
    try {
      for (;;) {
        if (active >= limits.maxConcurrentStreams) {
          // Wait for a slot; the peer's further streams stay in QUIC's queue meanwhile.
          try {
            await abortable<void>(ctx.signal, (resolve) => {
              slotWaiters.push(resolve);
              return () => {
                const i = slotWaiters.indexOf(resolve);
                if (i >= 0) slotWaiters.splice(i, 1);
              };
            });
          } catch {
            break;
          }
          continue;
        }
        let bi: BiStream;
        try {
          bi = await connection.acceptBi({ signal: ctx.signal });
        } catch {
          break;
        }
        active++;
        const stream = new FramedStream(bi, { maxMessageBytes: limits.maxMessageBytes, idleTimeoutMs: 0 });
        if (ctx.signal.aborted) stream.abort(abortReason(ctx.signal));
        live.add(stream);
        const task = ProtocolRegistry.#serveStream(registered, stream, ctx).finally(() => {
          live.delete(stream);
          active--;
          running.delete(task);
          slotWaiters.shift()?.();
        });
        running.add(task);
      }
      await Promise.allSettled([...running]);
      await refuseUni;
    } finally {
      if (sweeper !== undefined) clearInterval(sweeper);
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  static async #serveStream(registered: RegisteredProtocol, stream: FramedStream, ctx: ConnectionContext): Promise<void> {
    try {
      await registered.protocol.handleStream(stream, ctx);
    } catch (err) {
      if (err instanceof StreamProtocolError) {
        stream.reset(err.streamCode);
        ctx.log.warn('stream closed: peer broke the protocol', { alpn: ctx.alpn, peer: ctx.remoteId.fmtShort(), stream: stream.id, code: streamCodeName(err.streamCode), error: err.message });
      } else if (err instanceof ConnectionError || ctx.signal.aborted) {
        // The connection or the service is going away.
        stream.reset(StreamCode.SHUTDOWN);
      } else if (err instanceof StreamResetError) {
        stream.reset(StreamCode.INTERNAL);
        ctx.log.debug('peer abandoned a stream', { alpn: ctx.alpn, peer: ctx.remoteId.fmtShort(), stream: stream.id, code: err.streamCode });
      } else {
        stream.reset(StreamCode.INTERNAL);
        ctx.log.error('handler failed on a stream', { alpn: ctx.alpn, peer: ctx.remoteId.fmtShort(), stream: stream.id, error: String(err) });
      }
    } finally {
      stream.close();
    }
  }
}
