/**
 * The relay server: HTTP(S) with `node:http`/`node:https`, WebSocket with `ws`, the relay
 * protocol from `src/relay/protocol` (`shared/docs/iroh-wire.md` §1, reliability.md §4, §5.G).
 *
 * - `GET /relay`: upgrade validated exactly as iroh (§1.2), then one
 *   {@link RelayServerConnection} per client: challenge or TLS-header authentication, access
 *   control, forwarding 4/5 → 6/7 to the active connection of the destination, `Status` for
 *   duplicates, `EndpointGone`, pings;
 * - `/ping`, `/generate_204`, `/healthz`, `/`, `/robots.txt`, 404 otherwise (§1.9);
 * - limits: clients, per-IP connections, establish deadline, header size, WebSocket message
 *   size, per-client queue (count and bytes) with drops, write timeout, per-client byte-rate
 *   token bucket;
 * - Prometheus `/metrics` on its own listener; JSON logs; graceful shutdown with `Restarting`.
 *
 * Nothing a client sends can throw out of an event handler: protocol errors close that one
 * connection with a reason, and every handler is wrapped so an unexpected exception does the
 * same and is logged.
 *
 * @module
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { PublicKey } from '../../src/identity/keys.ts';
import { defaultCryptoProvider, type CryptoProvider } from '../../src/transport/crypto/index.ts';
import { RelayError } from '../../src/relay/protocol/errors.ts';
import { forwardedFrameLength, writeForwardedFrame } from '../../src/relay/protocol/frames.ts';
import {
  CLIENT_AUTH_HEADER,
  decodeClientAuthHeader,
  KEYING_MATERIAL_LABEL,
  KEYING_MATERIAL_LENGTH,
  verifyClientAuthHeader,
} from '../../src/relay/protocol/handshake.ts';
import { keyId } from '../../src/relay/protocol/key-cache.ts';
import { RelayServerConnection, type ServerCloseReason } from '../../src/relay/protocol/server-connection.ts';
import { bearerToken, validateUpgradeRequest } from '../../src/relay/protocol/upgrade.ts';
import { negotiateVersion, subprotocolOf, type ProtocolVersion } from '../../src/relay/protocol/version.ts';
import { StatusCode } from '../../src/relay/protocol/frames.ts';
import { AccessList, type AccessDecision, type AccessHook, type AccessPolicy } from './access.ts';
import { ClientRegistry, type EndpointEntry, type RegisteredConn } from './clients.ts';
import {
  DEFAULT_LIMITS,
  DEFAULT_RATE_LIMIT,
  DEFAULT_TIMING,
  type RelayServerLimits,
  type RelayServerOptions,
  type RelayServerTiming,
} from './config.ts';
import { DEFAULT_HOST, HTTP_CONNECTION_SLACK } from './defaults.ts';
import { silentLogger, type Logger } from './log.ts';
import { MetricsRegistry, type Counter } from './metrics.ts';
import { TokenBucket } from './rate-limit.ts';
import { PairRendezvous } from './rendezvous.ts';
import { RELAY_SERVER_VERSION } from './version.ts';

const now = (): number => performance.now();

/**
 * A clock updated by the server tick, for bookkeeping on the per-datagram path where a
 * quarter-second resolution is plenty (write progress against a 2 s timeout).
 */
let coarseNow = now();

/** A snapshot of the server's counters (the same numbers as `/metrics`). */
export interface RelayServerStats {
  /** Authenticated connections (active and inactive). */
  clients: number;
  /** Distinct EndpointIds connected. */
  endpoints: number;
  /** Upgraded connections still in the handshake. */
  handshaking: number;
  /** Open TCP connections on the relay listener. */
  tcpConnections: number;
  bytesRelayed: number;
  datagramsRelayed: number;
  framesRelayed: number;
  dropsNoRecipient: number;
  dropsQueueFull: number;
  authFailures: number;
  rateLimited: number;
  /** Entries in the EndpointGone bookkeeping (must return to 0 when everyone left). */
  sentToEntries: number;
}

/** What {@link startRelayServer} returns. */
export interface RelayServerHandle {
  /** The relay URL clients use, e.g. `http://127.0.0.1:3340/`. */
  readonly url: string;
  /** `http://host:port/metrics`, when metrics are on. */
  readonly metricsUrl: string | undefined;
  /** The captive-portal listener's URL, when configured. */
  readonly captivePortalUrl: string | undefined;
  readonly port: number;
  stats(): RelayServerStats;
  /** Prometheus text of `/metrics`. */
  metricsText(): string;
  /**
   * Replace the allow-list/tokens; connections that no longer qualify are closed at once
   * (iroh `tests/runtime_auth.rs`). Throws, keeping the old policy, on a malformed EndpointId.
   */
  updateAccess(policy: AccessPolicy): void;
  /** The pairing rendezvous (`/pair/<R>`), unless turned off. */
  readonly rendezvous: PairRendezvous | undefined;
  /**
   * Stop. Graceful (default): stop accepting, tell clients `Restarting`, close their
   * WebSockets, wait up to the grace period. Idempotent.
   */
  close(options?: { graceful?: boolean; signal?: AbortSignal }): Promise<void>;
}

/** WebSocket close codes used (RFC 6455 §7.4.1). */
const WS_CLOSE = { normal: 1000, goingAway: 1001, protocolError: 1002, policy: 1008, serviceRestart: 1012 } as const;

function wsCloseCodeFor(reason: ServerCloseReason): number {
  switch (reason) {
    case 'denied':
    case 'signature-invalid':
      return WS_CLOSE.policy;
    case 'protocol':
    case 'handshake-protocol':
      return WS_CLOSE.protocolError;
    default:
      return WS_CLOSE.goingAway;
  }
}

/** One WebSocket client of the relay. */
class ClientConn implements RegisteredConn {
  static #nextId = 1;
  readonly id = ClientConn.#nextId++;
  readonly ws: WebSocket;
  readonly socket: Socket;
  readonly conn: RelayServerConnection;
  readonly remoteAddress: string | undefined;
  readonly token: string | undefined;
  readonly version: ProtocolVersion;
  readonly headerKey: PublicKey | undefined;
  #publicKey: PublicKey | undefined;
  keyId: string | undefined;
  entry: EndpointEntry<ClientConn> | undefined;
  /** Datagram frames handed to the socket and not yet written out. */
  pending = 0;
  /** When the socket last made write progress (or the queue last became non-empty). */
  lastProgress = 0;
  bucket: TokenBucket | undefined;
  resumeTimer: NodeJS.Timeout | undefined;
  rateNoticeSent = false;
  closing = false;
  closed = false;
  terminateTimer: NodeJS.Timeout | undefined;
  readonly #server: RelayServerImpl;
  /** The last destination this client sent to, to skip the lookup for the next datagram. */
  lastDst: { bytes: Uint8Array; id: string; entry: EndpointEntry<ClientConn> } | undefined;
  readonly onSent = (): void => {
    this.pending--;
    this.lastProgress = coarseNow;
  };

  constructor(server: RelayServerImpl, init: { ws: WebSocket; socket: Socket; conn: RelayServerConnection; remoteAddress: string | undefined; token: string | undefined; version: ProtocolVersion; headerKey: PublicKey | undefined }) {
    this.#server = server;
    this.ws = init.ws;
    this.socket = init.socket;
    this.conn = init.conn;
    this.remoteAddress = init.remoteAddress;
    this.token = init.token;
    this.version = init.version;
    this.headerKey = init.headerKey;
  }

  get publicKey(): PublicKey {
    return this.#publicKey!;
  }

  set publicKey(key: PublicKey) {
    this.#publicKey = key;
  }

  get authenticated(): boolean {
    return this.#publicKey !== undefined;
  }

  sendStatus(status: number): void {
    this.conn.sendStatus(status);
    this.#server.flush(this);
  }

  sendEndpointGone(endpointId: PublicKey): void {
    this.conn.sendEndpointGone(endpointId);
    this.#server.flush(this);
  }

  evict(reason: string): void {
    this.#server.closeClient(this, 'closed', new RelayError('ERR_RELAY_CLOSED', reason), WS_CLOSE.policy);
  }
}

class RelayServerImpl implements RelayServerHandle {
  readonly #options: RelayServerOptions;
  /** The pairing rendezvous (`/pair/<R>`), unless turned off. */
  readonly rendezvous: PairRendezvous | undefined;
  readonly #limits: RelayServerLimits;
  readonly #timing: RelayServerTiming;
  readonly #crypto: CryptoProvider;
  readonly #log: Logger;
  readonly #accessList: AccessList;
  readonly #accessHook: AccessHook | undefined;
  readonly #rate: { bytesPerSecond: number; burstBytes: number } | undefined;
  readonly #tls: boolean;
  readonly #http: HttpServer;
  readonly #wss: WebSocketServer;
  readonly #registry: ClientRegistry<ClientConn>;
  readonly #conns = new Set<ClientConn>();
  /** Sockets seen by the HTTP layer that have not (yet) become authenticated relay clients. */
  readonly #unestablished = new Map<Socket, number>();
  readonly #perIp = new Map<string, number>();
  #tcpConnections = 0;
  #captive: HttpServer | undefined;
  #metricsServer: HttpServer | undefined;
  #tick: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  /** Sockets corked during this tick's forwarding, uncorked on the next tick. */
  #corked: ClientConn[] = [];
  #uncorkScheduled = false;

  url = '';
  metricsUrl: string | undefined;
  captivePortalUrl: string | undefined;
  port = 0;

  readonly #metrics = new MetricsRegistry();
  readonly #dropNoRecipient: { inc(n?: number): void };
  readonly #dropQueueFull: { inc(n?: number): void };
  readonly #dropClosed: { inc(n?: number): void };
  readonly #m: {
    accepted: Counter;
    handshakes: Counter;
    authFailures: Counter;
    disconnects: Counter;
    bytesRelayed: Counter;
    datagramsRelayed: Counter;
    framesRelayed: Counter;
    bytesReceived: Counter;
    drops: Counter;
    rateLimited: Counter;
    upgradeRejected: Counter;
    httpRequests: Counter;
    httpClientErrors: Counter;
    pingsSent: Counter;
    textMessages: Counter;
    internalErrors: Counter;
  };

  constructor(options: RelayServerOptions) {
    this.#options = options;
    this.rendezvous = options.rendezvous === false ? undefined : new PairRendezvous(options.rendezvous ?? {});
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#timing = { ...DEFAULT_TIMING, ...options.timing };
    this.#crypto = options.crypto ?? defaultCryptoProvider;
    this.#log = options.logger ?? silentLogger;
    this.#accessList = new AccessList(options.access);
    this.#accessHook = options.accessHook;
    if (options.rateLimit === false) this.#rate = undefined;
    else {
      const bytesPerSecond = options.rateLimit?.bytesPerSecond ?? DEFAULT_RATE_LIMIT.bytesPerSecond;
      const burstBytes = options.rateLimit?.burstBytes ?? (options.rateLimit === undefined ? DEFAULT_RATE_LIMIT.burstBytes : Math.max(bytesPerSecond, 1024 * 1024));
      this.#rate = { bytesPerSecond, burstBytes };
      new TokenBucket(bytesPerSecond, burstBytes, 0); // validates
    }
    this.#registry = new ClientRegistry({ maxInactive: this.#limits.maxInactivePerEndpoint, maxSentTo: this.#limits.maxSentToPerClient });
    const m = this.#metrics;
    this.#m = {
      accepted: m.counter('relay_tcp_connections_accepted_total', 'TCP connections accepted on the relay listener'),
      handshakes: m.counter('relay_handshakes_total', 'Clients authenticated, by mechanism'),
      authFailures: m.counter('relay_auth_failures_total', 'Handshakes that failed, by reason'),
      disconnects: m.counter('relay_disconnects_total', 'Relay connections ended, by reason'),
      bytesRelayed: m.counter('relay_bytes_relayed_total', 'Datagram payload bytes forwarded to a recipient'),
      datagramsRelayed: m.counter('relay_datagrams_relayed_total', 'Datagrams forwarded (each segment of a batch counts)'),
      framesRelayed: m.counter('relay_frames_relayed_total', 'Datagram frames forwarded'),
      bytesReceived: m.counter('relay_bytes_received_total', 'Datagram payload bytes received from clients'),
      drops: m.counter('relay_drops_total', 'Datagram frames dropped, by reason'),
      rateLimited: m.counter('relay_rate_limited_total', 'Times a client was paused by its rate limit'),
      upgradeRejected: m.counter('relay_upgrade_rejected_total', 'Upgrade requests rejected, by HTTP status'),
      httpRequests: m.counter('relay_http_requests_total', 'Plain HTTP requests, by path'),
      httpClientErrors: m.counter('relay_http_client_errors_total', 'Malformed HTTP requests and client socket errors'),
      pingsSent: m.counter('relay_pings_sent_total', 'Keep-alive pings sent to clients'),
      textMessages: m.counter('relay_text_messages_ignored_total', 'WebSocket text messages ignored'),
      internalErrors: m.counter('relay_internal_errors_total', 'Unexpected exceptions caught in connection handlers'),
    };
    m.gauge('relay_clients', 'Authenticated relay connections (active and inactive)', () => this.#registry.connections);
    m.gauge('relay_endpoints', 'Distinct EndpointIds connected', () => this.#registry.endpoints);
    m.gauge('relay_handshaking', 'Relay connections still in the handshake', () => this.#conns.size - this.#registry.connections);
    m.gauge('relay_tcp_connections', 'Open TCP connections on the relay listener', () => this.#tcpConnections);
    m.gauge('relay_send_queue_frames_max', 'Datagram frames queued towards the most backed-up client', () => {
      let max = 0;
      for (const c of this.#conns) if (c.pending > max) max = c.pending;
      return max;
    });
    m.gauge('process_resident_memory_bytes', 'Resident set size', () => process.memoryUsage.rss());
    m.gauge('nodejs_heap_used_bytes', 'V8 heap in use', () => process.memoryUsage().heapUsed);

    this.#dropNoRecipient = this.#m.drops.labelled({ reason: 'no_recipient' });
    this.#dropQueueFull = this.#m.drops.labelled({ reason: 'queue_full' });
    this.#dropClosed = this.#m.drops.labelled({ reason: 'closed' });
    this.#tls = options.tls !== undefined;
    const httpOptions = {
      maxHeaderSize: this.#limits.maxHeaderBytes,
      headersTimeout: this.#limits.handshakeTimeoutMs,
      requestTimeout: this.#limits.handshakeTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(this.#limits.handshakeTimeoutMs / 2))),
      keepAliveTimeout: 5_000,
      noDelay: true,
    };
    this.#http = this.#tls
      ? createHttpsServer({ ...httpOptions, cert: toBuffer(options.tls!.cert), key: toBuffer(options.tls!.key), handshakeTimeout: this.#limits.handshakeTimeoutMs } satisfies HttpsServerOptions)
      : createHttpServer(httpOptions);
    this.#http.maxConnections = this.#limits.maxClients + HTTP_CONNECTION_SLACK;
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // iroh-wire §1.3: 1 MiB max message, checked against the header before buffering.
      maxPayload: this.#limits.maxFrameBytes,
      skipUTF8Validation: true,
      handleProtocols: (_protocols, req) => {
        const v = negotiateVersion(String(req.headers['sec-websocket-protocol'] ?? ''));
        return v === undefined ? false : subprotocolOf(v);
      },
    });
    this.#wss.on('error', (err) => this.#log.warn('websocket server error', { err }));
    this.#installHttpHandlers();
  }

  #installHttpHandlers(): void {
    const http = this.#http;
    http.on('connection', (socket: Socket) => this.#guard('connection', () => this.#onTcpConnection(socket)));
    if (this.#tls) http.on('secureConnection', (socket: TLSSocket) => this.#guard('secureConnection', () => this.#track(socket)));
    http.on('tlsClientError', (_err: Error, socket: Socket) => {
      this.#m.httpClientErrors.inc();
      socket.destroy();
    });
    http.on('request', (req: IncomingMessage, res: ServerResponse) => this.#guard('request', () => this.#onRequest(req, res)));
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#guard('upgrade', () => this.#onUpgrade(req, socket, head), () => socket.destroy()));
    http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      this.#m.httpClientErrors.inc();
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroySoon();
    });
  }

  /** Run `fn`; an unexpected exception is logged and counted instead of escaping the event loop. */
  #guard(where: string, fn: () => void, onError?: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#m.internalErrors.inc();
      this.#log.error('unexpected error in handler', { where, err });
      try {
        onError?.();
      } catch {
        // nothing more to do
      }
    }
  }

  #onTcpConnection(socket: Socket): void {
    this.#tcpConnections++;
    this.#m.accepted.inc();
    const ip = socket.remoteAddress ?? '';
    const limit = this.#limits.maxConnectionsPerIp;
    if (limit > 0) {
      const n = (this.#perIp.get(ip) ?? 0) + 1;
      this.#perIp.set(ip, n);
      socket.once('close', () => {
        const left = (this.#perIp.get(ip) ?? 1) - 1;
        if (left <= 0) this.#perIp.delete(ip);
        else this.#perIp.set(ip, left);
      });
      if (n > limit) {
        this.#m.upgradeRejected.incLabelled({ status: 'per_ip_limit' });
        socket.destroy();
      }
    }
    socket.once('close', () => this.#tcpConnections--);
    socket.on('error', () => undefined);
    if (!this.#tls) this.#track(socket);
  }

  /** Start the establish deadline of a socket the HTTP layer serves. */
  #track(socket: Socket): void {
    if (socket.destroyed) return;
    this.#unestablished.set(socket, now());
    socket.once('close', () => this.#unestablished.delete(socket));
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    // The pairing rendezvous reads its own (bounded) bodies.
    if (this.rendezvous?.handle(req, res)) return;
    req.resume();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const method = req.method ?? 'GET';
    const known = ['/ping', '/generate_204', '/', '/index.html', '/robots.txt', '/healthz', '/relay'];
    this.#m.httpRequests.incLabelled({ path: known.includes(path) ? path : 'other' });
    if (known.includes(path) && method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    switch (path) {
      case '/ping':
        // iroh-wire §1.9: 200, empty body, CORS open; iroh's latency probe for home relay selection.
        res.writeHead(200, { 'Access-Control-Allow-Origin': '*', 'Content-Length': '0' }).end();
        return;
      case '/generate_204':
        this.#serveGenerate204(req, res);
        return;
      case '/':
      case '/index.html':
        res
          .writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
          .end('<!doctype html><html><head><title>sdnet relay</title></head><body><h1>sdnet relay</h1><p>An iroh-compatible relay server. Clients connect to <code>/relay</code>.</p></body></html>\n');
        return;
      case '/robots.txt':
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('User-agent: *\nDisallow: /\n');
        return;
      case '/healthz':
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(`${JSON.stringify({ status: 'ok', version: RELAY_SERVER_VERSION })}\n`);
        return;
      case '/relay':
        // A GET /relay without the upgrade headers.
        res.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain; charset=utf-8' }).end('Expected a WebSocket upgrade\n');
        return;
      default:
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not Found\n');
    }
  }

  #serveGenerate204(req: IncomingMessage, res: ServerResponse): void {
    // iroh-wire §1.9: echo X-Iroh-Challenge only if non-empty, < 64 chars of [A-Za-z0-9._-].
    const challenge = req.headers['x-iroh-challenge'];
    const headers: Record<string, string> = {};
    if (typeof challenge === 'string' && challenge.length > 0 && challenge.length < 64 && /^[A-Za-z0-9._-]+$/.test(challenge)) {
      headers['X-Iroh-Response'] = `response ${challenge}`;
    }
    res.writeHead(204, headers).end();
  }

  #rejectUpgrade(socket: Socket, status: number, message: string, headers: Record<string, string> = {}): void {
    this.#m.upgradeRejected.incLabelled({ status: String(status) });
    const reason = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 503: 'Service Unavailable' }[status] ?? 'Error';
    const body = `${message}\n`;
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    if (socket.writable) {
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`);
    }
    socket.destroySoon();
  }

  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    if (path !== '/relay') {
      this.#rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (this.#closing !== undefined) {
      this.#rejectUpgrade(socket, 503, 'Relay is shutting down');
      return;
    }
    const decision = validateUpgradeRequest({ method: req.method ?? '', headers: req.headers });
    if (!decision.ok) {
      this.#rejectUpgrade(socket, decision.status, decision.message, decision.headers);
      return;
    }
    // iroh-wire §1.2: bytes that arrived before the upgrade completed are rejected (BufferNotEmpty).
    if (head.length > 0) {
      this.#rejectUpgrade(socket, 400, 'Unexpected bytes before the upgrade completed');
      return;
    }
    if (this.#conns.size >= this.#limits.maxClients) {
      this.#rejectUpgrade(socket, 503, 'Relay is full');
      return;
    }
    const token = bearerToken(req.headers, url);
    const headerKey = this.#verifyHeaderAuth(req, socket);
    const version = decision.version;
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#guard('websocket', () => this.#onWebSocket(ws, socket, version, token, headerKey), () => ws.terminate()));
  }

  /** The header path of iroh-wire §1.5: only over TLS, silently ignored when it does not verify. */
  #verifyHeaderAuth(req: IncomingMessage, socket: Socket): PublicKey | undefined {
    const value = req.headers[CLIENT_AUTH_HEADER];
    if (!this.#tls || typeof value !== 'string') return undefined;
    try {
      const auth = decodeClientAuthHeader(value);
      const km = (socket as TLSSocket).exportKeyingMaterial(KEYING_MATERIAL_LENGTH, KEYING_MATERIAL_LABEL, Buffer.from(auth.publicKey.bytes));
      const result = verifyClientAuthHeader(auth, new Uint8Array(km.buffer, km.byteOffset, km.byteLength), this.#crypto);
      if (result === 'ok') return auth.publicKey;
      this.#log.debug('client auth header did not verify; falling back to the challenge', { result });
    } catch (err) {
      this.#log.debug('client auth header unusable; falling back to the challenge', { err });
    }
    return undefined;
  }

  #onWebSocket(ws: WebSocket, socket: Socket, version: ProtocolVersion, token: string | undefined, headerKey: PublicKey | undefined): void {
    const acceptedAt = this.#unestablished.get(socket) ?? now();
    // From here the connection's own state machine enforces the establish deadline.
    this.#upgradedSockets.add(socket);
    const t = this.#timing;
    const conn = new RelayServerConnection({
      version,
      crypto: this.#crypto,
      handshakeDeadline: acceptedAt + this.#limits.handshakeTimeoutMs,
      pingIntervalMs: t.pingIntervalMs,
      pingJitterMinMs: t.pingJitterMinMs,
      pingJitterMaxMs: t.pingJitterMaxMs,
      maxPongTimeoutMs: t.pongTimeoutMs,
    });
    const c = new ClientConn(this, { ws, socket, conn, remoteAddress: socket.remoteAddress, token, version, headerKey });
    if (this.#rate) c.bucket = new TokenBucket(this.#rate.bytesPerSecond, this.#rate.burstBytes, now());
    this.#conns.add(c);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#guard('message', () => this.#onMessage(c, data, isBinary), () => this.closeClient(c, 'protocol', new RelayError('ERR_RELAY_PROTOCOL', 'internal error'), 1011)));
    ws.on('close', (code: number) => this.#guard('close', () => this.#onWsClose(c, code)));
    ws.on('error', (err: Error) => {
      // ws reports framing violations here (bad opcode, unmasked frame, message too big, …) and then closes.
      this.#log.debug('websocket error', { conn: c.id, err });
      if (!c.closed && !c.closing) this.#endConn(c, 'protocol', new RelayError('ERR_RELAY_PROTOCOL', err.message));
    });
    conn.start(now(), headerKey);
    this.flush(c);
  }

  #onMessage(c: ClientConn, data: Buffer, isBinary: boolean): void {
    if (c.closed || c.closing) return;
    if (!isBinary) {
      // iroh-wire §1.3: text messages are ignored.
      this.#m.textMessages.inc();
      return;
    }
    const t = now();
    if (c.bucket !== undefined) {
      const waitMs = c.bucket.consume(data.length, t);
      if (waitMs > 0) this.#throttle(c, waitMs);
    }
    // Datagram frames go through as they are. Anything else as a plain Uint8Array view (no
    // copy): Buffer's slice() aliases instead of copying, and the decoders rely on copies.
    const first = data[0];
    c.conn.handleFrame(t, first === 4 || first === 5 ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.flush(c);
  }

  /** Stop reading from a client until its bucket is back to zero (TCP back-pressure). */
  #throttle(c: ClientConn, waitMs: number): void {
    if (c.resumeTimer !== undefined) return;
    this.#m.rateLimited.inc();
    if (!c.rateNoticeSent && c.version >= 2 && c.conn.state === 'connected') {
      // Newer iroh relays tell the client once (Status 2); 1.0.2 clients accept unknown codes.
      c.rateNoticeSent = true;
      c.conn.sendStatus(StatusCode.RateLimited);
    }
    c.ws.pause();
    c.resumeTimer = setTimeout(() => {
      c.resumeTimer = undefined;
      if (c.closed) return;
      const more = c.bucket!.consume(0, now());
      if (more > 0) this.#throttle(c, more);
      else c.ws.resume();
    }, waitMs);
  }

  /** Drain a connection's events and frames to send. */
  flush(c: ClientConn): void {
    for (;;) {
      const e = c.conn.pollEvent();
      if (e === undefined) break;
      switch (e.type) {
        case 'datagrams':
          this.#forward(c, e.frame, e.typeLength, e.batch, e.dst, e.contentLength);
          break;
        case 'authenticated':
          this.#onAuthenticated(c, e.publicKey, e.mechanism);
          break;
        case 'pong':
          break;
        case 'closed':
          this.#writeTransmits(c);
          this.#endConn(c, e.reason, e.error);
          return;
      }
    }
    this.#writeTransmits(c);
  }

  #writeTransmits(c: ClientConn): void {
    for (let f = c.conn.pollTransmit(); f !== undefined; f = c.conn.pollTransmit()) {
      if (c.ws.readyState !== 1) continue;
      if (f[0] === 9) this.#m.pingsSent.inc();
      c.ws.send(f);
    }
  }

  #onAuthenticated(c: ClientConn, publicKey: PublicKey, mechanism: 'challenge' | 'keying-material'): void {
    c.publicKey = publicKey;
    const request = { endpointId: publicKey, token: c.token, remoteAddress: c.remoteAddress };
    let decision: AccessDecision | Promise<AccessDecision>;
    try {
      decision = this.#accessHook ? this.#accessHook(request) : this.#accessList.check(request);
    } catch (err) {
      this.#log.error('access hook threw; denying', { err });
      decision = { allow: false, reason: 'access control failed' };
    }
    const apply = (d: AccessDecision): void => {
      if (c.closed || c.closing || c.conn.state !== 'authenticated') return;
      if (!d.allow) {
        this.#m.authFailures.incLabelled({ reason: 'denied' });
        this.#log.info('client denied', { endpoint: publicKey.toString(), reason: d.reason ?? 'not authorized', remote: c.remoteAddress });
        c.conn.deny(d.reason ?? 'not authorized');
        this.flush(c);
        return;
      }
      c.conn.accept(now());
      c.keyId = keyId(publicKey.bytes);
      this.#unestablished.delete(c.socket);
      this.#registry.register(c.keyId, c);
      c.entry = this.#registry.get(c.keyId);
      this.#m.handshakes.incLabelled({ mechanism });
      this.#log.debug('client connected', { conn: c.id, endpoint: publicKey.toString(), mechanism, version: c.version, remote: c.remoteAddress });
      this.flush(c);
    };
    if (decision instanceof Promise) {
      decision.then(
        (d) => this.#guard('access', () => apply(d)),
        (err: unknown) => this.#guard('access', () => {
          this.#log.error('access hook rejected; denying', { err });
          apply({ allow: false, reason: 'access control failed' });
        }),
      );
    } else apply(decision);
  }

  #forward(src: ClientConn, frame: Uint8Array, typeLength: number, batch: boolean, dst: Uint8Array, contentLength: number): void {
    this.#m.bytesReceived.inc(contentLength);
    // Senders mostly send many datagrams to the same peer: remember the last lookup.
    let cached = src.lastDst;
    if (cached === undefined || cached.entry.removed || !sameKey(cached.bytes, dst)) {
      const dstId = keyId(dst);
      const entry = this.#registry.get(dstId);
      if (entry === undefined) {
        // iroh-wire §1.8: no such client, dropped silently (and counted).
        this.#dropNoRecipient.inc();
        return;
      }
      // A real copy: dst is a Buffer view into a 64 KiB socket read (Buffer's slice() would
      // alias it and pin that whole chunk for as long as the cache lives).
      cached = { bytes: new Uint8Array(dst), id: dstId, entry };
      src.lastDst = cached;
    }
    const target = cached.entry.active;
    if (target.closing || target.closed || target.ws.readyState !== 1) {
      this.#dropClosed.inc();
      return;
    }
    // iroh PER_CLIENT_SEND_QUEUE_DEPTH: a full queue drops instead of blocking the sender.
    if (target.pending >= this.#limits.sendQueueDepth || target.ws.bufferedAmount >= this.#limits.sendQueueBytes) {
      this.#dropQueueFull.inc();
      return;
    }
    // allocUnsafe: pooled and not zero-filled; every byte is written just below.
    const out = writeForwardedFrame(Buffer.allocUnsafe(forwardedFrameLength(frame.length, typeLength)), frame, typeLength, batch, src.publicKey.bytes);
    if (target.pending === 0) target.lastProgress = coarseNow;
    target.pending++;
    if (!target.socket.writableCorked) {
      // Coalesce everything written to this socket in this tick into one writev.
      target.socket.cork();
      this.#corked.push(target);
      if (!this.#uncorkScheduled) {
        this.#uncorkScheduled = true;
        process.nextTick(this.#uncorkAll);
      }
    }
    target.ws.send(out, target.onSent);
    if (src.entry !== undefined) this.#registry.recordSentTo(src.entry, cached.id);
    this.#m.framesRelayed.inc();
    this.#m.bytesRelayed.inc(contentLength);
    let datagrams = 1;
    if (batch) {
      const seg = (frame[typeLength + 33]! << 8) | frame[typeLength + 34]!;
      if (seg > 0 && contentLength > seg) datagrams = Math.ceil(contentLength / seg);
    }
    this.#m.datagramsRelayed.inc(datagrams);
  }

  readonly #uncorkAll = (): void => {
    this.#uncorkScheduled = false;
    const list = this.#corked;
    this.#corked = [];
    for (const c of list) while (c.socket.writableCorked > 0) c.socket.uncork();
  };

  /** Close a client from the server side. */
  closeClient(c: ClientConn, reason: ServerCloseReason, error: RelayError, wsCode?: number): void {
    if (c.closed || c.closing) return;
    c.conn.close(reason, error);
    // Drain the 'closed' event through the normal path.
    for (let e = c.conn.pollEvent(); e !== undefined; e = c.conn.pollEvent()) if (e.type === 'closed') this.#endConn(c, e.reason, e.error, wsCode);
  }

  /** The protocol side of a connection ended: account for it and close the WebSocket. */
  #endConn(c: ClientConn, reason: ServerCloseReason, error: RelayError, wsCode?: number): void {
    if (c.closing || c.closed) return;
    c.closing = true;
    if (c.conn.state !== 'closed') c.conn.close(reason, error);
    this.#recordEnd(c, reason, error);
    if (c.ws.readyState === 1) {
      c.ws.close(wsCode ?? wsCloseCodeFor(reason), error.message.slice(0, 120));
      // A peer that never answers the close handshake is cut off.
      c.terminateTimer = setTimeout(() => c.ws.terminate(), 1_000);
    } else c.ws.terminate();
    this.#release(c);
  }

  #recordEnd(c: ClientConn, reason: ServerCloseReason, error: RelayError): void {
    if (reason === 'handshake-timeout' || reason === 'handshake-protocol' || reason === 'signature-invalid') {
      this.#m.authFailures.incLabelled({ reason: reason.replace(/-/g, '_') });
    }
    this.#m.disconnects.incLabelled({ reason: reason.replace(/-/g, '_') });
    if (reason !== 'closed') this.#log.debug('client connection ended', { conn: c.id, endpoint: c.authenticated ? c.publicKey.toString() : undefined, reason, error: error.message });
  }

  /** Remove a connection from every table (idempotent). */
  #release(c: ClientConn): void {
    if (!this.#conns.delete(c)) return;
    if (c.resumeTimer !== undefined) {
      clearTimeout(c.resumeTimer);
      c.resumeTimer = undefined;
    }
    if (c.keyId !== undefined) {
      this.#registry.unregister(c.keyId, c);
      c.entry = undefined;
    }
    this.#unestablished.delete(c.socket);
  }

  #onWsClose(c: ClientConn, code: number): void {
    if (c.terminateTimer !== undefined) clearTimeout(c.terminateTimer);
    c.closed = true;
    if (!c.closing) {
      c.closing = true;
      const err = new RelayError('ERR_RELAY_CLOSED', `WebSocket closed (${code})`);
      c.conn.close('closed', err);
      while (c.conn.pollEvent() !== undefined);
      this.#recordEnd(c, 'closed', err);
    }
    this.#release(c);
  }

  /** Periodic deadlines: establish timeouts, pings, pong deadlines, write timeouts. */
  readonly #onTick = (): void => {
    this.#guard('tick', () => {
      const t = now();
      coarseNow = t;
      const hsDeadline = t - this.#limits.handshakeTimeoutMs;
      for (const [socket, acceptedAt] of this.#unestablished) {
        if (acceptedAt <= hsDeadline) {
          this.#unestablished.delete(socket);
          // Upgraded connections time out through their state machine; raw sockets here.
          if (!this.#isUpgraded(socket)) {
            this.#m.authFailures.incLabelled({ reason: 'handshake_timeout' });
            socket.destroy();
          }
        }
      }
      for (const c of this.#conns) {
        if (c.closing) continue;
        if (c.pending > 0 && t - c.lastProgress > this.#limits.writeTimeoutMs) {
          // iroh SERVER_WRITE_TIMEOUT: a client that does not read is dropped.
          this.#m.disconnects.incLabelled({ reason: 'write_timeout' });
          c.closing = true;
          c.conn.close('closed', new RelayError('ERR_RELAY_TIMEOUT', 'write timeout'));
          while (c.conn.pollEvent() !== undefined);
          c.ws.terminate();
          this.#release(c);
          continue;
        }
        const deadline = c.conn.pollTimeout();
        if (deadline !== undefined && deadline <= t) {
          c.conn.handleTimeout(t);
          this.flush(c);
        }
      }
    });
  };

  readonly #upgradedSockets = new WeakSet<Socket>();

  #isUpgraded(socket: Socket): boolean {
    return this.#upgradedSockets.has(socket);
  }

  async listen(): Promise<void> {
    const host = this.#options.host ?? DEFAULT_HOST;
    await listen(this.#http, this.#options.port ?? 0, host);
    this.port = (this.#http.address() as AddressInfo).port;
    this.url = `${this.#tls ? 'https' : 'http'}://${hostForUrl(host)}:${this.port}/`;
    if (this.#tls && this.#options.captivePortalPort !== undefined) {
      const captive = createHttpServer({ maxHeaderSize: this.#limits.maxHeaderBytes, headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) =>
        this.#guard('captive', () => {
          req.resume();
          const path = (req.url ?? '/').split('?')[0];
          if (path === '/generate_204' && (req.method === 'GET' || req.method === 'HEAD')) this.#serveGenerate204(req, res);
          else res.writeHead(404).end('Not Found\n');
        }),
      );
      captive.on('clientError', (_e, s) => s.destroy());
      this.#captive = captive;
      await listen(captive, this.#options.captivePortalPort, host);
      this.captivePortalUrl = `http://${hostForUrl(host)}:${(captive.address() as AddressInfo).port}/generate_204`;
    }
    const mo = this.#options.metrics;
    if (mo !== undefined && mo !== false) {
      const mhost = mo.host ?? host;
      const server = createHttpServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) =>
        this.#guard('metrics', () => {
          req.resume();
          const path = (req.url ?? '/').split('?')[0];
          if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
            res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(this.metricsText());
          } else res.writeHead(404).end('Not Found\n');
        }),
      );
      server.on('clientError', (_e, s) => s.destroy());
      this.#metricsServer = server;
      await listen(server, mo.port ?? 0, mhost);
      this.metricsUrl = `http://${hostForUrl(mhost)}:${(server.address() as AddressInfo).port}/metrics`;
    }
    this.#tick = setInterval(this.#onTick, this.#timing.tickMs);
    this.#tick.unref();
    this.#log.info('relay listening', { url: this.url, metrics: this.metricsUrl, captivePortal: this.captivePortalUrl, tls: this.#tls, version: RELAY_SERVER_VERSION });
  }

  stats(): RelayServerStats {
    const m = this.#m;
    return {
      clients: this.#registry.connections,
      endpoints: this.#registry.endpoints,
      handshaking: this.#conns.size - this.#registry.connections,
      tcpConnections: this.#tcpConnections,
      bytesRelayed: m.bytesRelayed.get(),
      datagramsRelayed: m.datagramsRelayed.get(),
      framesRelayed: m.framesRelayed.get(),
      dropsNoRecipient: m.drops.get({ reason: 'no_recipient' }),
      dropsQueueFull: m.drops.get({ reason: 'queue_full' }),
      authFailures: m.authFailures.total(),
      rateLimited: m.rateLimited.get(),
      sentToEntries: this.#registry.sentToSize(),
    };
  }

  metricsText(): string {
    return this.#metrics.render();
  }

  updateAccess(policy: AccessPolicy): void {
    this.#accessList.update(policy);
    if (this.#accessHook !== undefined) return;
    for (const c of [...this.#conns]) {
      if (!c.authenticated || c.keyId === undefined || c.closing) continue;
      const d = this.#accessList.check({ endpointId: c.publicKey, token: c.token, remoteAddress: c.remoteAddress });
      if (!d.allow) {
        this.#log.info('access revoked; disconnecting client', { endpoint: c.publicKey.toString() });
        this.closeClient(c, 'denied', new RelayError('ERR_RELAY_DENIED', 'access revoked'), WS_CLOSE.policy);
      }
    }
  }

  close(options: { graceful?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    this.#closing ??= this.#close(options.graceful ?? true, options.signal);
    return this.#closing;
  }

  async #close(graceful: boolean, signal: AbortSignal | undefined): Promise<void> {
    this.#log.info('relay shutting down', { graceful, clients: this.#registry.connections });
    if (this.#tick !== undefined) clearInterval(this.#tick);
    const stopped = closeServer(this.#http);
    const conns = [...this.#conns];
    const allClosed = Promise.all(conns.map((c) => (c.closed ? undefined : new Promise<void>((r) => c.ws.once('close', () => r())))));
    for (const c of conns) {
      if (graceful && c.conn.state === 'connected') {
        // Tell clients when to come back (iroh-wire §1.6, type 12), then close the socket.
        c.conn.sendRestarting(this.#timing.restartReconnectInMs, this.#timing.restartTryForMs);
        this.#writeTransmits(c);
      }
      if (!c.closing) {
        c.closing = true;
        const err = new RelayError('ERR_RELAY_CLOSED', 'relay shutting down');
        c.conn.close('closed', err);
        while (c.conn.pollEvent() !== undefined);
        this.#m.disconnects.incLabelled({ reason: 'shutdown' });
        if (graceful && c.ws.readyState === 1) c.ws.close(WS_CLOSE.serviceRestart, 'relay restarting');
        else c.ws.terminate();
      }
      this.#release(c);
    }
    for (const socket of this.#unestablished.keys()) socket.destroy();
    this.#unestablished.clear();
    this.#http.closeIdleConnections();
    if (graceful) {
      let timer: NodeJS.Timeout | undefined;
      const abort = new Promise<void>((r) => {
        timer = setTimeout(r, this.#timing.shutdownGraceMs);
        signal?.addEventListener('abort', () => r(), { once: true });
      });
      await Promise.race([allClosed, abort]);
      clearTimeout(timer);
    }
    for (const c of conns) if (!c.closed) c.ws.terminate();
    this.#http.closeAllConnections();
    await stopped;
    if (this.#captive !== undefined) await closeServer(this.#captive, true);
    if (this.#metricsServer !== undefined) await closeServer(this.#metricsServer, true);
    this.#wss.close();
    this.#log.info('relay stopped');
  }
}

/** Equality of 32 key bytes (not secret: both are public keys). */
function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

function toBuffer(pem: string | Uint8Array): Buffer {
  return typeof pem === 'string' ? Buffer.from(pem) : Buffer.from(pem.buffer, pem.byteOffset, pem.byteLength);
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function listen(server: HttpServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: HttpServer, force = false): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    if (force) server.closeAllConnections();
  });
}

/**
 * Start a relay server. Resolves once it accepts connections. `signal` aborts the start, and
 * aborting it afterwards closes the server gracefully.
 *
 * ```ts
 * const relay = await startRelayServer({ port: 0, metrics: { port: 0 } });
 * relay.url;        // "http://127.0.0.1:41234/"
 * await relay.close();
 * ```
 */
export async function startRelayServer(options: RelayServerOptions & { signal?: AbortSignal } = {}): Promise<RelayServerHandle> {
  const { signal } = options;
  signal?.throwIfAborted();
  const server = new RelayServerImpl(options);
  try {
    await server.listen();
    signal?.throwIfAborted();
  } catch (err) {
    await server.close({ graceful: false }).catch(() => undefined);
    throw err;
  }
  // The signal stays the server's off switch: aborting it later shuts it down gracefully.
  signal?.addEventListener('abort', () => void server.close({ graceful: true }), { once: true });
  return server;
}
