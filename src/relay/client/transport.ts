/**
 * The seam between the relay client and a WebSocket implementation. Two implementations:
 * `nodeWebSocketTransport` (the `ws` package: request headers, 1 MiB message cap enforced
 * before buffering, and the TLS keying-material header of iroh-wire §1.5) and
 * `standardWebSocketTransport` (the WHATWG `WebSocket` of browsers and Node ≥ 22: bearer
 * token as `?token=`, challenge authentication only).
 *
 * @module
 */
import type { SecretKey } from '../../identity/keys.ts';
import type { CryptoProvider } from '../../transport/crypto/provider.ts';
import type { RelayError } from '../protocol/errors.ts';

/** How a relay WebSocket ended. */
export interface RelaySocketClose {
  code: number;
  reason: string;
  /** What went wrong, when it was not an orderly close. */
  error?: RelayError;
}

/** An open relay WebSocket. One relay frame = one binary message (iroh-wire §1.3). */
export interface RelaySocket {
  /** The subprotocol the relay chose (`''` if it chose none). */
  readonly protocol: string;
  /** Bytes handed to `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  send(frame: Uint8Array): void;
  /** Close with a WebSocket close code. */
  close(code?: number, reason?: string): void;
  /** Called for every binary message, as a plain Uint8Array. */
  onMessage: ((data: Uint8Array) => void) | undefined;
  /** Called once when the socket is closed, whichever side closed it. */
  onClose: ((info: RelaySocketClose) => void) | undefined;
}

/** What a transport needs to open a relay connection. */
export interface RelayTransportRequest {
  /** `ws://` or `wss://` URL with path `/relay` (iroh-wire §1.1). */
  url: URL;
  /** Offered subprotocols (iroh-wire §1.2). */
  protocols: readonly string[];
  token: string | undefined;
  /** For the TLS header path; a transport may ignore it. */
  secretKey: SecretKey;
  crypto: CryptoProvider;
  /** Largest WebSocket message accepted. */
  maxMessageBytes: number;
  /** Aborted on connect timeout or by the caller. */
  signal: AbortSignal;
}

/**
 * Opens a relay WebSocket. Resolves once the upgrade completed (status 101); rejects with a
 * {@link RelayError} (`ERR_RELAY_HANDSHAKE` for a bad upgrade, `ERR_RELAY_CLOSED` for a
 * network failure, `ERR_RELAY_TIMEOUT`/`ERR_RELAY_ABORTED` when `signal` aborts).
 */
export type RelayTransport = (request: RelayTransportRequest) => Promise<RelaySocket>;

/**
 * The relay URL's WebSocket form: the path replaced by `/relay`, `http` → `ws`, anything
 * else → `wss` (iroh-wire §1.1 — a path prefix in the relay URL is not honoured).
 */
export function relayWebSocketUrl(relayUrl: URL): URL {
  const scheme = relayUrl.protocol === 'http:' || relayUrl.protocol === 'ws:' ? 'ws:' : 'wss:';
  return new URL(`${scheme}//${relayUrl.host}/relay`);
}

/**
 * What every {@link RelaySocket} adapter shares: messages that arrive between the upgrade
 * completing and the client attaching its handler are held (the relay's challenge often comes
 * in the same TCP segment as the 101, and the WebSocket library emits it synchronously), and
 * a close seen before `onClose` is attached is still reported once it is. Bounded: a relay
 * has no business sending more than a frame or two before we authenticate.
 */
export abstract class BufferedRelaySocket implements RelaySocket {
  static readonly EARLY_LIMIT = 64;
  #onMessage: ((data: Uint8Array) => void) | undefined;
  #pending: Uint8Array[] = [];
  #onClose: ((info: RelaySocketClose) => void) | undefined;
  /** Set once closed; a handler attached later still hears about it. */
  #closeInfo: RelaySocketClose | undefined;

  abstract readonly protocol: string;
  abstract readonly bufferedAmount: number;
  abstract send(frame: Uint8Array): void;
  abstract close(code?: number, reason?: string): void;

  get onMessage(): ((data: Uint8Array) => void) | undefined {
    return this.#onMessage;
  }

  set onMessage(handler: ((data: Uint8Array) => void) | undefined) {
    this.#onMessage = handler;
    if (handler === undefined) return;
    const pending = this.#pending;
    this.#pending = [];
    for (const m of pending) {
      if (this.#onMessage !== handler) return;
      handler(m);
    }
  }

  get onClose(): ((info: RelaySocketClose) => void) | undefined {
    return this.#onClose;
  }

  set onClose(handler: ((info: RelaySocketClose) => void) | undefined) {
    this.#onClose = handler;
    if (handler !== undefined && this.#closeInfo !== undefined) handler(this.#closeInfo);
  }

  /** The adapter received a binary message. */
  protected deliver(data: Uint8Array): void {
    if (this.#onMessage !== undefined) this.#onMessage(data);
    else if (this.#pending.length < BufferedRelaySocket.EARLY_LIMIT) this.#pending.push(data);
  }

  /** The adapter's socket closed (only the first call counts). */
  protected ended(info: RelaySocketClose): void {
    if (this.#closeInfo !== undefined) return;
    this.#closeInfo = info;
    this.#onClose?.(info);
  }
}
