/**
 * The relay transport on the WHATWG `WebSocket` API: `globalThis.WebSocket` in browsers,
 * Deno, Bun and Node ≥ 22. Browsers cannot set request headers or export TLS keying
 * material, so (as iroh's wasm build does, `shared/docs/iroh-wire.md` §1.2) the bearer token
 * goes in `?token=` and authentication always uses the challenge.
 *
 * This API has no message-size cap before buffering; messages over the limit are refused
 * after arrival and close the connection.
 *
 * @module
 */
import { RelayError } from '../protocol/errors.ts';
import { versionOfSubprotocol } from '../protocol/version.ts';
import { BufferedRelaySocket, type RelaySocket, type RelayTransport, type RelayTransportRequest } from './transport.ts';

/** The parts of the WHATWG WebSocket used here. */
export interface StandardWebSocket {
  binaryType: string;
  readonly protocol: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: { data?: unknown; code?: number; reason?: string }) => void): void;
}
export type StandardWebSocketCtor = new (url: string, protocols: string[]) => StandardWebSocket;

class StandardRelaySocket extends BufferedRelaySocket {
  readonly #ws: StandardWebSocket;
  readonly #maxMessageBytes: number;
  #error: RelayError | undefined;

  constructor(ws: StandardWebSocket, maxMessageBytes: number) {
    super();
    this.#ws = ws;
    this.#maxMessageBytes = maxMessageBytes;
    ws.addEventListener('message', (e) => {
      // iroh-wire §1.3: text messages are ignored.
      if (!(e.data instanceof ArrayBuffer)) return;
      if (e.data.byteLength > this.#maxMessageBytes) {
        this.#error = new RelayError('ERR_RELAY_PROTOCOL', `Relay sent a WebSocket message of ${e.data.byteLength} bytes, over the limit`);
        this.close(1009, 'message too big');
        return;
      }
      this.deliver(new Uint8Array(e.data));
    });
    ws.addEventListener('close', (e) => {
      const code = e.code ?? 1006;
      const error = this.#error ?? (code === 1000 || code === 1001 ? undefined : new RelayError('ERR_RELAY_CLOSED', `Relay WebSocket closed abnormally (${code})`));
      this.ended({ code, reason: e.reason ?? '', error });
    });
  }

  get protocol(): string {
    return this.#ws.protocol;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(frame: Uint8Array): void {
    if (this.#ws.readyState === 1) this.#ws.send(frame);
  }

  close(code = 1000, reason = ''): void {
    if (this.#ws.readyState >= 2) return;
    this.#ws.close(code, reason);
  }
}

/** The transport on `globalThis.WebSocket` (or a given constructor). */
export function standardWebSocketTransport(WebSocketCtor?: StandardWebSocketCtor): RelayTransport {
  return (req: RelayTransportRequest): Promise<RelaySocket> => {
    const Ctor = WebSocketCtor ?? (globalThis as { WebSocket?: StandardWebSocketCtor }).WebSocket;
    if (Ctor === undefined) return Promise.reject(new TypeError('No global WebSocket in this runtime; use nodeWebSocketTransport()'));
    const { signal } = req;
    if (signal.aborted) return Promise.reject(new RelayError('ERR_RELAY_ABORTED', 'Connecting to the relay was aborted'));
    const url = new URL(req.url.href);
    if (req.token !== undefined) url.searchParams.set('token', req.token);
    const ws = new Ctor(url.href, [...req.protocols]);
    ws.binaryType = 'arraybuffer';
    return new Promise<RelaySocket>((resolve, reject) => {
      let settled = false;
      const fail = (err: RelayError): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        try {
          ws.close();
        } catch {
          // already closing
        }
        reject(err);
      };
      const onAbort = (): void => {
        const r: unknown = signal.reason;
        fail(r instanceof Error && r.name === 'TimeoutError' ? new RelayError('ERR_RELAY_TIMEOUT', 'Connecting to the relay timed out') : new RelayError('ERR_RELAY_ABORTED', 'Connecting to the relay was aborted'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      // The API hides why a connection failed; status codes and reset reasons are not exposed.
      ws.addEventListener('error', () => fail(new RelayError('ERR_RELAY_CLOSED', 'Relay WebSocket connection failed')));
      ws.addEventListener('close', (e) => fail(new RelayError('ERR_RELAY_CLOSED', `Relay WebSocket closed during the upgrade (${e.code ?? 1006})`)));
      ws.addEventListener('open', () => {
        if (settled) return;
        // iroh-wire §1.2: a 101 without a known subprotocol is refused. (The WHATWG algorithm
        // already fails a missing one; an unexpected one is checked here.)
        if (versionOfSubprotocol(ws.protocol) === undefined) {
          fail(new RelayError('ERR_RELAY_HANDSHAKE', `Relay chose no known subprotocol (got ${JSON.stringify(ws.protocol)})`));
          return;
        }
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve(new StandardRelaySocket(ws, req.maxMessageBytes));
      });
    });
  };
}
