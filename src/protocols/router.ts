/**
 * `Router`: accepts connections on an endpoint and hands each to the handler of its ALPN, in
 * the shape of iroh's `Router` (`Router::builder(endpoint).accept(ALPN, handler).spawn()`).
 *
 * Every ALPN is registered before the endpoint accepts anything: the builder collects them
 * and {@link RouterBuilder.spawn} sets them on the endpoint in one step (an endpoint bound
 * without ALPNs drops every connection attempt until then), so no connection can arrive for
 * a protocol whose handler does not exist yet — the race Spacedrive has (spacedrive-net.md
 * §1.3). An optional {@link AfterHandshake} hook (iroh's `EndpointHooks::after_handshake`)
 * sees the peer's authenticated id and the ALPN and may refuse with an application close
 * code before the handler is called.
 *
 * @module
 */
import type { Connection } from '../endpoint/connection.ts';
import type { Endpoint, Incoming } from '../endpoint/endpoint.ts';
import type { PathAddr } from '../transport/quic/connection/types.ts';
import type { PublicKey } from '../identity/keys.ts';
import { SdnetError } from '../util/errors.ts';
import { CloseCode } from './codes.ts';

/** A protocol served on one ALPN (iroh's `ProtocolHandler`). */
export interface ProtocolHandler {
  /**
   * Serve one accepted connection. The router does not wait for it before accepting others;
   * if it rejects, the connection is closed with {@link CloseCode.HANDLER_FAILED}.
   */
  accept(connection: Connection): Promise<void>;
  /** The router is shutting down: stop serving (called once, before the endpoint closes). */
  shutdown?(): Promise<void> | void;
}

/** What the after-handshake hook is told about a connection. */
export interface HandshakeInfo {
  /** The peer's EndpointId, proven by the TLS handshake. */
  readonly remoteId: PublicKey;
  readonly alpn: string;
  readonly remoteAddress: PathAddr;
}

/** The hook's verdict: accept, or close with an application code and reason. */
export type AfterHandshakeOutcome = { readonly accept: true } | { readonly accept: false; readonly code: number; readonly reason: string };

/** Decides, after the peer authenticated and before the handler runs, whether to serve it. */
export type AfterHandshake = (info: HandshakeInfo) => AfterHandshakeOutcome | Promise<AfterHandshakeOutcome>;

/** Why the router turned a connection away or a handler failed (for logs and tests). */
export interface RouterEvent {
  readonly type: 'refused' | 'handler-failed' | 'handshake-failed';
  readonly alpn: string | undefined;
  readonly remoteId: PublicKey | undefined;
  readonly code?: number;
  readonly reason?: string;
  readonly error?: unknown;
}

/** How long shutdown waits for handlers still running after their connections closed (ms). */
const SHUTDOWN_TASK_GRACE_MS = 2_000;

export class RouterBuilder {
  readonly #endpoint: Endpoint;
  readonly #handlers = new Map<string, ProtocolHandler>();
  #hook: AfterHandshake | undefined;
  #onEvent: ((event: RouterEvent) => void) | undefined;
  #spawned = false;

  /** @internal */
  constructor(endpoint: Endpoint) {
    this.#endpoint = endpoint;
  }

  /**
   * Serve `alpn` with `handler`.
   *
   * @throws {SdnetError} `ERR_ALPN_REGISTERED` if the ALPN already has a handler
   */
  accept(alpn: string, handler: ProtocolHandler): this {
    if (this.#spawned) throw new SdnetError('ERR_ROUTER_SPAWNED', 'The router is already running: register every ALPN before spawn()');
    const bytes = new TextEncoder().encode(alpn).length;
    if (bytes === 0 || bytes > 255) throw new RangeError('An ALPN is 1..255 bytes');
    if (this.#handlers.has(alpn)) throw new SdnetError('ERR_ALPN_REGISTERED', `ALPN "${alpn}" already has a handler`);
    this.#handlers.set(alpn, handler);
    return this;
  }

  /** Check every authenticated connection before its handler runs. */
  afterHandshake(hook: AfterHandshake): this {
    this.#hook = hook;
    return this;
  }

  /** Be told of refusals and handler failures. */
  onEvent(listener: (event: RouterEvent) => void): this {
    this.#onEvent = listener;
    return this;
  }

  /** Set every registered ALPN on the endpoint and start accepting. */
  spawn(): Router {
    if (this.#spawned) throw new SdnetError('ERR_ROUTER_SPAWNED', 'spawn() was already called');
    this.#spawned = true;
    return new Router(this.#endpoint, new Map(this.#handlers), this.#hook, this.#onEvent);
  }
}

export class Router {
  readonly endpoint: Endpoint;
  readonly #handlers: ReadonlyMap<string, ProtocolHandler>;
  readonly #hook: AfterHandshake | undefined;
  readonly #onEvent: ((event: RouterEvent) => void) | undefined;
  readonly #stop = new AbortController();
  readonly #tasks = new Set<Promise<void>>();
  readonly #loop: Promise<void>;
  #shutdown: Promise<void> | undefined;

  /** Start building a router on `endpoint`. */
  static builder(endpoint: Endpoint): RouterBuilder {
    return new RouterBuilder(endpoint);
  }

  /** @internal */
  constructor(endpoint: Endpoint, handlers: ReadonlyMap<string, ProtocolHandler>, hook: AfterHandshake | undefined, onEvent: ((event: RouterEvent) => void) | undefined) {
    this.endpoint = endpoint;
    this.#handlers = handlers;
    this.#hook = hook;
    this.#onEvent = onEvent;
    // All at once, before the first accept: no connection finds a protocol missing.
    endpoint.setAlpns([...handlers.keys()]);
    this.#loop = this.#acceptLoop();
  }

  /** The ALPNs served. */
  get alpns(): string[] {
    return [...this.#handlers.keys()];
  }

  /** Whether {@link shutdown} was called. */
  get isShutdown(): boolean {
    return this.#shutdown !== undefined;
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const incoming of this.endpoint.accept({ signal: this.#stop.signal })) this.#track(this.#serve(incoming));
    } catch {
      // Aborted by shutdown().
    }
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task));
  }

  #emit(event: RouterEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // A listener's failure is not the router's.
    }
  }

  async #serve(incoming: Incoming): Promise<void> {
    let info;
    try {
      info = await incoming.handshake({ signal: this.#stop.signal });
    } catch (error) {
      if (this.#stop.signal.aborted) incoming.refuse(CloseCode.SHUTDOWN, 'shutting down');
      this.#emit({ type: 'handshake-failed', alpn: incoming.alpn, remoteId: undefined, error });
      return;
    }
    const handler = this.#handlers.get(info.alpn);
    if (handler === undefined || this.#stop.signal.aborted) {
      const code = handler === undefined ? CloseCode.REFUSED : CloseCode.SHUTDOWN;
      const reason = handler === undefined ? 'no handler for this ALPN' : 'shutting down';
      incoming.refuse(code, reason);
      this.#emit({ type: 'refused', alpn: info.alpn, remoteId: info.remoteId, code, reason });
      return;
    }
    if (this.#hook) {
      let outcome: AfterHandshakeOutcome;
      try {
        outcome = await this.#hook({ remoteId: info.remoteId, alpn: info.alpn, remoteAddress: incoming.remoteAddress });
      } catch (error) {
        outcome = { accept: false, code: CloseCode.REFUSED, reason: 'refused' };
        this.#emit({ type: 'handler-failed', alpn: info.alpn, remoteId: info.remoteId, error });
      }
      if (!outcome.accept) {
        incoming.refuse(outcome.code, outcome.reason);
        this.#emit({ type: 'refused', alpn: info.alpn, remoteId: info.remoteId, code: outcome.code, reason: outcome.reason });
        return;
      }
    }
    const connection = await incoming.accept();
    try {
      await handler.accept(connection);
    } catch (error) {
      if (!connection.isClosed) connection.close(CloseCode.HANDLER_FAILED, 'handler failed');
      this.#emit({ type: 'handler-failed', alpn: info.alpn, remoteId: info.remoteId, error });
    }
  }

  /**
   * Stop accepting, let each handler shut down, then close the endpoint (as iroh's
   * `Router::shutdown` does). Safe to call twice.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      this.endpoint.setAlpns([]);
      this.#stop.abort();
      await this.#loop;
      await Promise.all([...this.#handlers.values()].map(async (h) => {
        try {
          await h.shutdown?.();
        } catch {
          // Shutting down anyway.
        }
      }));
      await this.endpoint.close();
      // Handler tasks end once their connections are closed; one that ignores that does not
      // hold the shutdown for long.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.allSettled([...this.#tasks]), new Promise<void>((r) => (timer = setTimeout(r, SHUTDOWN_TASK_GRACE_MS)))]);
      clearTimeout(timer);
    })();
    return this.#shutdown;
  }
}
