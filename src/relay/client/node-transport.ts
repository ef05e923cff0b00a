/**
 * The Node relay transport, on the `ws` package (`shared/docs/iroh-wire.md` §1.1–§1.3, §1.5):
 *
 * - sends iroh's upgrade request: `Sec-WebSocket-Protocol: iroh-relay-v2, iroh-relay-v1`,
 *   `Authorization: Bearer` when a token is set, no compression;
 * - over TLS (`wss:`), opens the TLS connection first, exports 32 bytes of keying material
 *   (label `iroh-relay handshake v1`, context = our public key) and sends the signed
 *   `x-iroh-relay-client-auth-v1` header, saving the challenge round trip;
 * - caps messages at 1 MiB before buffering them (`maxPayload`);
 * - requires the relay to choose a known subprotocol (iroh's `BadVersionHeader`).
 *
 * @module
 */
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import WebSocket from 'ws';
import { RelayError } from '../protocol/errors.ts';
import { CLIENT_AUTH_HEADER, encodeClientAuthHeader, KEYING_MATERIAL_LABEL, KEYING_MATERIAL_LENGTH } from '../protocol/handshake.ts';
import { versionOfSubprotocol } from '../protocol/version.ts';
import { BufferedRelaySocket, type RelaySocket, type RelayTransport, type RelayTransportRequest } from './transport.ts';

/** TLS options for `wss:` relays (e.g. a private CA in tests). */
export interface NodeTlsOptions {
  /** Trusted CA certificates (PEM); default: Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Server name to verify; default: the URL host. */
  servername?: string;
  /** Send the keying-material auth header (default true). */
  headerAuth?: boolean;
}

function abortError(signal: AbortSignal): RelayError {
  const reason: unknown = signal.reason;
  if (reason instanceof RelayError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') return new RelayError('ERR_RELAY_TIMEOUT', 'Connecting to the relay timed out', { cause: reason });
  return new RelayError('ERR_RELAY_ABORTED', 'Connecting to the relay was aborted', { cause: reason });
}

/** Map a `ws`/socket error to a relay error code. */
function classify(err: Error, opened: boolean): RelayError {
  const code = (err as NodeJS.ErrnoException).code;
  const msg = err.message;
  if (!opened && /subprotocol|Sec-WebSocket|Unexpected server response|Invalid Upgrade|Invalid status|Opening handshake/i.test(msg)) {
    return new RelayError('ERR_RELAY_HANDSHAKE', `Relay upgrade failed: ${msg}`, { cause: err });
  }
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || /Max payload size exceeded/i.test(msg)) {
    return new RelayError('ERR_RELAY_PROTOCOL', `Relay sent a WebSocket message over the limit: ${msg}`, { cause: err });
  }
  if (typeof code === 'string' && code.startsWith('WS_ERR_')) return new RelayError('ERR_RELAY_PROTOCOL', `Relay broke WebSocket framing: ${msg}`, { cause: err });
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'CERT_HAS_EXPIRED') {
    return new RelayError('ERR_RELAY_HANDSHAKE', `Relay TLS certificate rejected: ${msg}`, { cause: err });
  }
  return new RelayError('ERR_RELAY_CLOSED', `Relay connection failed: ${code ?? msg}`, { cause: err });
}

async function openTls(url: URL, tls: NodeTlsOptions, signal: AbortSignal): Promise<TLSSocket> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const options: ConnectionOptions = {
    host,
    port: Number(url.port || 443),
    ALPNProtocols: ['http/1.1'],
    ca: tls.ca,
    // iroh-wire §1.1: the server certificate is verified; no insecure switch.
    rejectUnauthorized: true,
  };
  const servername = tls.servername ?? (isIP(host) === 0 ? host : undefined);
  if (servername !== undefined) options.servername = servername;
  const socket = tlsConnect(options);
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      socket.destroy();
      reject(abortError(signal));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('secureConnect', () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(classify(err, false));
    });
  });
  return socket;
}

class WsRelaySocket extends BufferedRelaySocket {
  readonly #ws: WebSocket;
  #error: RelayError | undefined;

  constructor(ws: WebSocket) {
    super();
    this.#ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // iroh-wire §1.3: text messages are ignored.
      if (!isBinary) return;
      // A plain view: Buffer's slice() aliases, the codecs rely on slice() copying.
      this.deliver(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    ws.on('error', (err) => {
      this.#error ??= classify(err, true);
    });
    ws.on('close', (code: number, reason: Buffer) => this.ended({ code, reason: reason.toString('utf8'), error: this.#error }));
  }

  get protocol(): string {
    return this.#ws.protocol;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(frame: Uint8Array): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(frame);
  }

  close(code = 1000, reason = ''): void {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    if (this.#ws.readyState === WebSocket.CONNECTING) {
      this.#ws.terminate();
      return;
    }
    this.#ws.close(code, reason);
    // Do not wait 30 s for a relay that never answers the close handshake.
    const t = setTimeout(() => this.#ws.terminate(), 2_000);
    t.unref();
    this.#ws.once('close', () => clearTimeout(t));
  }
}

/** The `ws`-based transport; `tls` applies to `wss:` relays. */
export function nodeWebSocketTransport(tls: NodeTlsOptions = {}): RelayTransport {
  return async (req: RelayTransportRequest): Promise<RelaySocket> => {
    const { url, signal } = req;
    if (signal.aborted) throw abortError(signal);
    const headers: Record<string, string> = {};
    if (req.token !== undefined) headers.Authorization = `Bearer ${req.token}`;
    let createConnection: (() => TLSSocket) | undefined;
    if (url.protocol === 'wss:') {
      const socket = await openTls(url, tls, signal);
      if (tls.headerAuth !== false) {
        try {
          // iroh-wire §1.5 header path: export, sign the first half, send the second in clear.
          const km = socket.exportKeyingMaterial(KEYING_MATERIAL_LENGTH, KEYING_MATERIAL_LABEL, Buffer.from(req.secretKey.public().bytes));
          headers[CLIENT_AUTH_HEADER] = encodeClientAuthHeader(req.secretKey, new Uint8Array(km.buffer, km.byteOffset, km.byteLength));
        } catch {
          // No exporter: the relay falls back to the challenge.
        }
      }
      createConnection = () => socket;
    }
    const ws = new WebSocket(url, [...req.protocols], {
      headers,
      perMessageDeflate: false,
      maxPayload: req.maxMessageBytes,
      skipUTF8Validation: true,
      followRedirects: false,
      ...(createConnection ? { createConnection } : {}),
    });
    return new Promise<RelaySocket>((resolve, reject) => {
      let settled = false;
      const fail = (err: RelayError): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        try {
          ws.terminate();
        } catch {
          // Runs from an abort listener: a throw here would escape to the event loop.
        }
        reject(err);
      };
      const onAbort = (): void => fail(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      ws.once('unexpected-response', (request, response) => {
        response.resume();
        request.destroy();
        fail(new RelayError('ERR_RELAY_HANDSHAKE', `Relay answered the upgrade with HTTP ${response.statusCode ?? '?'} instead of 101`));
      });
      ws.once('error', (err) => fail(classify(err, false)));
      ws.once('close', (code) => fail(new RelayError('ERR_RELAY_CLOSED', `Relay closed during the upgrade (${code})`)));
      ws.once('open', () => {
        if (settled) return;
        // iroh-wire §1.2: the relay must choose iroh-relay-v2 or -v1, else BadVersionHeader.
        if (versionOfSubprotocol(ws.protocol) === undefined) {
          fail(new RelayError('ERR_RELAY_HANDSHAKE', `Relay chose no known subprotocol (got ${JSON.stringify(ws.protocol)})`));
          return;
        }
        settled = true;
        signal.removeEventListener('abort', onAbort);
        ws.removeAllListeners('error');
        ws.removeAllListeners('close');
        resolve(new WsRelaySocket(ws));
      });
    });
  };
}
