/**
 * The relay server: HTTP(S) with `node:http`/`node:https`, WebSocket framing of its own
 * (`./websocket.ts`), the relay protocol from `src/relay/protocol` (`shared/docs/iroh-wire.md`
 * §1, reliability.md §4, §5.G).
 *
 * - `GET /relay`: upgrade validated exactly as iroh (§1.2), then one
 *   {@link RelayServerConnection} per client: challenge or TLS-header authentication, access
 *   control, forwarding 4/5 → 6/7 to the active connection of the destination, `Status` for
 *   duplicates, `EndpointGone`, pings;
 * - `/ping`, `/generate_204`, `/healthz`, `/`, `/robots.txt`, 404 otherwise (§1.9);
 * - admission (`./limits.ts`): per address group (IPv4 address, IPv6 /64) a connection cap,
 *   a cap on those still in the handshake and an accept-rate bucket; a total cap on
 *   handshaking connections kept apart from the authenticated clients' slots; a request
 *   deadline for idle sockets and an establish deadline from TCP accept, TLS included;
 * - every frame a client sends is charged to its byte-rate bucket when its header arrives;
 * - every frame the relay sends is counted against the client's queue (frames and bytes,
 *   pongs apart) and a global byte cap, and a socket that makes no write progress for the
 *   write timeout is closed whatever the client keeps sending;
 * - Prometheus `/metrics` on its own listener; JSON logs; graceful shutdown with `Restarting`.
 *
 * Nothing a client sends can throw out of an event handler: protocol errors close that one
 * connection with a reason, and every handler and timer is wrapped so an unexpected exception
 * closes the one connection it concerns, is counted (`relay_internal_errors_total`) and is
 * logged — even by a logger that itself throws.
 *
 * @module
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import { isIPv6, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { PublicKey } from '../../src/identity/keys.ts';
import { defaultCryptoProvider, type CryptoProvider } from '../../src/transport/crypto/index.ts';
import { RelayError } from '../../src/relay/protocol/errors.ts';
import { forwardedFrameLength, FrameType, StatusCode, writeForwardedFrame } from '../../src/relay/protocol/frames.ts';
import {
  CLIENT_AUTH_HEADER,
  decodeClientAuthHeader,
  KEYING_MATERIAL_LABEL,
  KEYING_MATERIAL_LENGTH,
  verifyClientAuthHeader,
} from '../../src/relay/protocol/handshake.ts';
import { keyId } from '../../src/relay/protocol/key-cache.ts';
import { PING_DATA_LENGTH } from '../../src/relay/protocol/limits.ts';
import { RelayServerConnection, type ServerCloseReason } from '../../src/relay/protocol/server-connection.ts';
import { bearerToken, validateUpgradeRequest } from '../../src/relay/protocol/upgrade.ts';
import { subprotocolOf, type ProtocolVersion } from '../../src/relay/protocol/version.ts';
import { AccessList, type AccessDecision, type AccessHook, type AccessPolicy } from './access.ts';
import { ClientRegistry, type EndpointEntry, type RegisteredConn } from './clients.ts';
import {
  checkRanges,
  DEFAULT_LIMITS,
  DEFAULT_RATE_LIMIT,
  DEFAULT_TIMING,
  type RelayServerLimits,
  type RelayServerOptions,
  type RelayServerTiming,
} from './config.ts';
import { DEFAULT_HOST, DEFAULT_METRICS_HOST } from './defaults.ts';
import { MAX_HANDSHAKE_MESSAGE_BYTES, MAX_PENDING_PONGS, MAX_TRACKED_ADDRESS_GROUPS, PONG_BURST, PONG_RATE_PER_SECOND } from './limits.ts';
import { silentLogger, type Logger } from './log.ts';
import { MetricsRegistry, type Counter } from './metrics.ts';
import { TokenBucket } from './rate-limit.ts';
import { PairRendezvous } from './rendezvous.ts';
import { PkarrRelay } from './pkarr.ts';
import { QadServer } from './qad.ts';
import { StaticFiles } from './static-files.ts';
import { RELAY_SERVER_VERSION } from './version.ts';
import { acceptKey, CloseCode, frameHeaderLength, Opcode, ServerWebSocket, writeFrameHeader } from './websocket.ts';

const now = (): number => performance.now();

/**
 * A clock updated by the server tick, for bookkeeping on the per-datagram path where a
 * tick's resolution is plenty (write progress against a 2 s timeout, ping scheduling).
 */
let coarseNow = now();

/** A snapshot of the server's counters (the same numbers as `/metrics`). */
export interface RelayServerStats {
  /** Authenticated connections (active and inactive). */
  clients: number;
  /** Distinct EndpointIds connected. */
  endpoints: number;
  /** Upgraded connections still in the relay handshake. */
  handshaking: number;
  /** Open TCP connections on the relay listener. */
  tcpConnections: number;
  /** TCP connections not yet authenticated (HTTP, TLS, upgraded), the ones `maxHandshaking` caps. */
  unauthenticated: number;
  bytesRelayed: number;
  datagramsRelayed: number;
  framesRelayed: number;
  dropsNoRecipient: number;
  /** Datagram frames dropped because the recipient's queue (or the global cap) was full. */
  dropsQueueFull: number;
  authFailures: number;
  rateLimited: number;
  /** Entries in the EndpointGone bookkeeping (must return to 0 when everyone left). */
  sentToEntries: number;
  /** Bytes queued towards all clients now. */
  queuedBytes: number;
  /** Pongs not sent because the client's queue already held enough of them. */
  pongsDropped: number;
  /** Clients closed because their socket made no write progress. */
  writeTimeouts: number;
  /** Clients closed because they flooded pings and did not answer the relay's within the write timeout. */
  probeTimeouts: number;
  /** TCP connections refused at accept (per-IP caps, accept rate, handshaking cap). */
  connectionsRefused: number;
  /** Unexpected exceptions caught (each closed the connection it concerned). */
  internalErrors: number;
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
  /** The pkarr relay (`/pkarr/<z32>`), unless turned off. */
  readonly pkarr: PkarrRelay | undefined;
  /** The QUIC address discovery UDP port, when it serves one. */
  readonly qadPort: number | undefined;
  /**
   * Stop. Graceful (default): stop accepting, tell clients `Restarting`, close their
   * WebSockets, wait up to the grace period. Idempotent.
   */
  close(options?: { graceful?: boolean; signal?: AbortSignal }): Promise<void>;
}

function wsCloseCodeFor(reason: ServerCloseReason): number {
  switch (reason) {
    case 'denied':
    case 'signature-invalid':
      return CloseCode.policy;
    case 'protocol':
    case 'handshake-protocol':
      return CloseCode.protocolError;
    default:
      return CloseCode.goingAway;
  }
}

/**
 * The address group a connection counts against: an IPv4 address (also when written as an
 * IPv4-mapped IPv6 address), or the /64 prefix of an IPv6 address — what one customer of a
 * provider usually gets, so a host cannot escape the per-IP caps by using more of its own
 * addresses.
 */
export function addressGroup(address: string | undefined): string {
  if (address === undefined || address === '') return '?';
  let a = address;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  if (!isIPv6(a)) return a;
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const left = head === '' ? [] : head!.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** Connections and the accept bucket of one address group. */
interface AddressGroupState {
  conns: number;
  handshaking: number;
  tokens: number;
  last: number;
}

/** One TCP connection on the relay listener, from accept to close. */
interface TcpConn {
  readonly raw: Socket;
  readonly group: AddressGroupState;
  readonly groupKey: string;
  readonly acceptedAt: number;
  /** When it was last waiting for a request (accept, or the end of the last response). */
  idleSince: number;
  /** Requests being answered. */
  busy: number;
  /** Requests seen at all. */
  requests: number;
  upgraded: boolean;
  /** Counted in the handshaking caps (until authenticated or closed). */
  handshaking: boolean;
}

/** One WebSocket client of the relay. */
class ClientConn implements RegisteredConn {
  static #nextId = 1;
  readonly id = ClientConn.#nextId++;
  readonly ws: ServerWebSocket;
  readonly socket: Socket;
  readonly tcp: TcpConn | undefined;
  readonly conn: RelayServerConnection;
  readonly remoteAddress: string | undefined;
  readonly token: string | undefined;
  readonly version: ProtocolVersion;
  readonly headerKey: PublicKey | undefined;
  #publicKey: PublicKey | undefined;
  keyId: string | undefined;
  entry: EndpointEntry<ClientConn> | undefined;
  /** Frames handed to the socket and not yet written out. */
  pendingFrames = 0;
  /** Of those, pongs. */
  pendingPongs = 0;
  /** The socket's queued bytes as last added to the server's total. */
  accounted = 0;
  /** When the socket last made write progress (or its queue last became non-empty). */
  lastProgress = 0;
  bucket: TokenBucket | undefined;
  resumeTimer: NodeJS.Timeout | undefined;
  rateNoticeSent = false;
  closing = false;
  closed = false;
  readonly #server: RelayServerImpl;
  readonly #closedWaiters: Array<() => void> = [];
  /** The last destination this client sent to, to skip the lookup for the next datagram. */
  lastDst: { bytes: Uint8Array; id: string; entry: EndpointEntry<ClientConn> } | undefined;
  readonly onWritten = (): void => {
    this.pendingFrames--;
    this.lastProgress = coarseNow;
    this.#server.resync(this);
  };
  /** Reading stopped until queued pongs are written (a client pinging faster than it reads). */
  pausedForPongs = false;
  /** The ping-answer bucket (PONG_RATE_PER_SECOND, PONG_BURST). */
  pongTokens = PONG_BURST;
  pongRefilledAt = 0;
  /** Reading stopped until the ping-answer bucket refills. */
  pongTimer: NodeJS.Timeout | undefined;
  /** The answer to our probing Ping must arrive by then, or the client is closed. */
  probeDeadline: number | undefined;
  lastProbeAt = -Infinity;
  /** Pong frames answered in this turn of the event loop, written together at its end. */
  pongBatch: Buffer | undefined;
  pongBatchBytes = 0;
  pongBatchCount = 0;

  constructor(
    server: RelayServerImpl,
    init: { socket: Socket; tcp: TcpConn | undefined; conn: RelayServerConnection; remoteAddress: string | undefined; token: string | undefined; version: ProtocolVersion; headerKey: PublicKey | undefined },
    makeWs: (c: ClientConn) => ServerWebSocket,
  ) {
    this.#server = server;
    this.socket = init.socket;
    this.tcp = init.tcp;
    this.conn = init.conn;
    this.remoteAddress = init.remoteAddress;
    this.token = init.token;
    this.version = init.version;
    this.headerKey = init.headerKey;
    this.ws = makeWs(this);
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

  /** Resolves once the socket is closed. */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.#closedWaiters.push(resolve));
  }

  markClosed(): void {
    this.closed = true;
    for (const w of this.#closedWaiters.splice(0)) w();
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
    this.#server.closeClient(this, 'closed', new RelayError('ERR_RELAY_CLOSED', reason), CloseCode.policy);
  }
}

/** Names of control frames, for the drop counter. */
function controlName(type: number): string {
  switch (type) {
    case FrameType.Pong:
      return 'pong';
    case FrameType.Ping:
      return 'ping';
    case FrameType.Status:
    case FrameType.Health:
      return 'status';
    case FrameType.EndpointGone:
      return 'endpoint_gone';
    default:
      return 'other';
  }
}

class RelayServerImpl implements RelayServerHandle {
  readonly #options: RelayServerOptions;
  /** The pairing rendezvous (`/pair/<R>`), unless turned off. */
  readonly rendezvous: PairRendezvous | undefined;
  /** The pkarr relay (`/pkarr/<z32>`), unless turned off. */
  readonly pkarr: PkarrRelay | undefined;
  readonly #limits: RelayServerLimits;
  readonly #timing: RelayServerTiming;
  readonly #crypto: CryptoProvider;
  readonly #log: Logger;
  readonly #accessList: AccessList;
  readonly #accessHook: AccessHook | undefined;
  readonly #rate: { bytesPerSecond: number; burstBytes: number } | undefined;
  readonly #tls: boolean;
  readonly #http: HttpServer;
  readonly #registry: ClientRegistry<ClientConn>;
  readonly #conns = new Set<ClientConn>();
  /** Every TCP connection on the relay listener, by its raw socket. */
  readonly #tcp = new Map<Socket, TcpConn>();
  /** The same, by "address|port", to find the record of a TLS socket (which wraps the raw one). */
  readonly #tcpByPeer = new Map<string, TcpConn>();
  readonly #groups = new Map<string, AddressGroupState>();
  /** TCP connections not yet authenticated (capped by `maxHandshaking`). */
  #handshaking = 0;
  /** Bytes queued towards all clients. */
  #queuedTotal = 0;
  #captive: HttpServer | undefined;
  #metricsServer: HttpServer | undefined;
  #tick: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  /** Sockets corked during this tick's forwarding, uncorked on the next tick. */
  #corked: ClientConn[] = [];
  /** Clients with pongs batched during this tick. */
  #pongClients: ClientConn[] = [];
  #uncorkScheduled = false;

  url = '';
  metricsUrl: string | undefined;
  captivePortalUrl: string | undefined;
  port = 0;
  qadPort: number | undefined;
  #qad: QadServer | undefined;

  readonly #metrics = new MetricsRegistry();
  readonly #dropNoRecipient: { inc(n?: number): void };
  readonly #dropQueueFull: { inc(n?: number): void };
  readonly #dropGlobalFull: { inc(n?: number): void };
  readonly #dropClosed: { inc(n?: number): void };
  readonly #m: {
    accepted: Counter;
    refused: Counter;
    handshakes: Counter;
    authFailures: Counter;
    disconnects: Counter;
    bytesRelayed: Counter;
    datagramsRelayed: Counter;
    framesRelayed: Counter;
    bytesReceived: Counter;
    drops: Counter;
    controlDrops: Counter;
    pongsDropped: Counter;
    rateLimited: Counter;
    upgradeRejected: Counter;
    httpRequests: Counter;
    httpClientErrors: Counter;
    pingsSent: Counter;
    probes: Counter;
    textMessages: Counter;
    internalErrors: Counter;
  };

  /** `--static DIR`, when given. */
  readonly #static: StaticFiles | undefined;

  constructor(options: RelayServerOptions) {
    this.#options = options;
    this.rendezvous = options.rendezvous === false ? undefined : new PairRendezvous(options.rendezvous ?? {});
    this.#static = options.staticDir !== undefined ? new StaticFiles(options.staticDir) : undefined;
    this.pkarr = options.pkarr === false ? undefined : new PkarrRelay(options.pkarr ?? {});
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#timing = { ...DEFAULT_TIMING, ...options.timing };
    checkRanges(this.#limits, this.#timing);
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
      refused: m.counter('relay_connections_refused_total', 'TCP connections closed at accept, by limit'),
      handshakes: m.counter('relay_handshakes_total', 'Clients authenticated, by mechanism'),
      authFailures: m.counter('relay_auth_failures_total', 'Handshakes that failed, by reason'),
      disconnects: m.counter('relay_disconnects_total', 'Relay connections ended, by reason'),
      bytesRelayed: m.counter('relay_bytes_relayed_total', 'Datagram payload bytes forwarded to a recipient'),
      datagramsRelayed: m.counter('relay_datagrams_relayed_total', 'Datagrams forwarded (each segment of a batch counts)'),
      framesRelayed: m.counter('relay_frames_relayed_total', 'Datagram frames forwarded'),
      bytesReceived: m.counter('relay_bytes_received_total', 'Datagram payload bytes received from clients'),
      drops: m.counter('relay_drops_total', 'Datagram frames dropped, by reason'),
      controlDrops: m.counter('relay_control_frames_dropped_total', 'Frames other than datagrams not sent because the client queue was full, by frame'),
      pongsDropped: m.counter('relay_pongs_dropped_total', 'Pongs (relay and WebSocket) not sent because the client already had enough queued'),
      rateLimited: m.counter('relay_rate_limited_total', 'Times a client was paused by its rate limit'),
      upgradeRejected: m.counter('relay_upgrade_rejected_total', 'Upgrade requests rejected, by HTTP status'),
      httpRequests: m.counter('relay_http_requests_total', 'Plain HTTP requests, by path'),
      httpClientErrors: m.counter('relay_http_client_errors_total', 'Malformed HTTP requests and client socket errors'),
      pingsSent: m.counter('relay_pings_sent_total', 'Keep-alive pings sent to clients'),
      probes: m.counter('relay_ping_flood_probes_total', 'Pings sent to clients that pinged faster than they are answered'),
      textMessages: m.counter('relay_text_messages_refused_total', 'WebSocket text messages refused (the connection is closed with 1003)'),
      internalErrors: m.counter('relay_internal_errors_total', 'Unexpected exceptions caught in handlers and timers, by where; each closed its connection'),
    };
    m.gauge('relay_clients', 'Authenticated relay connections (active and inactive)', () => this.#registry.connections);
    m.gauge('relay_endpoints', 'Distinct EndpointIds connected', () => this.#registry.endpoints);
    m.gauge('relay_handshaking', 'Relay connections still in the relay handshake', () => this.#conns.size - this.#registry.connections);
    m.gauge('relay_unauthenticated_connections', 'TCP connections not yet authenticated (HTTP, TLS, relay handshake)', () => this.#handshaking);
    m.gauge('relay_tcp_connections', 'Open TCP connections on the relay listener', () => this.#tcp.size);
    m.gauge('relay_queued_bytes', 'Bytes queued towards all clients', () => this.#queuedTotal);
    m.gauge('relay_send_queue_frames_max', 'Frames queued towards the most backed-up client', () => {
      let max = 0;
      for (const c of this.#conns) if (c.pendingFrames > max) max = c.pendingFrames;
      return max;
    });
    m.gauge('relay_qad_connections', 'QUIC address discovery connections open', () => this.#qad?.connections ?? 0);
    m.gauge('relay_qad_accepted', 'QUIC address discovery connections accepted since start', () => this.#qad?.accepted ?? 0);
    m.gauge('relay_qad_refused', 'QUIC address discovery connections refused (too many open) since start', () => this.#qad?.refused ?? 0);
    m.gauge('process_resident_memory_bytes', 'Resident set size', () => process.memoryUsage.rss());
    m.gauge('nodejs_heap_used_bytes', 'V8 heap in use', () => process.memoryUsage().heapUsed);

    this.#dropNoRecipient = this.#m.drops.labelled({ reason: 'no_recipient' });
    this.#dropQueueFull = this.#m.drops.labelled({ reason: 'queue_full' });
    this.#dropGlobalFull = this.#m.drops.labelled({ reason: 'global_queue_full' });
    this.#dropClosed = this.#m.drops.labelled({ reason: 'closed' });
    this.#tls = options.tls !== undefined;
    const l = this.#limits;
    const httpOptions = {
      maxHeaderSize: l.maxHeaderBytes,
      // A request head must be complete this long after it starts; idle sockets are cut by the tick.
      headersTimeout: l.requestTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(l.requestTimeoutMs / 2))),
      keepAliveTimeout: Math.min(5_000, l.requestTimeoutMs),
      noDelay: true,
    };
    this.#http = this.#tls
      ? createHttpsServer({
          ...httpOptions,
          cert: toBuffer(options.tls!.cert),
          key: toBuffer(options.tls!.key),
          // The exporter behind the TLS-header authentication (iroh-wire §1.5) is TLS 1.3's.
          minVersion: 'TLSv1.3',
          // The establish deadline, counted from the TCP accept, is the tick's (TLS included);
          // Node's own TLS timer is only a backstop behind it.
          handshakeTimeout: l.handshakeTimeoutMs + 1_000,
        } satisfies HttpsServerOptions)
      : createHttpServer(httpOptions);
    // A backstop behind the caps enforced at accept (Node drops connections past it unseen).
    this.#http.maxConnections = l.maxClients + l.maxHandshaking;
    this.#installHttpHandlers();
  }

  #installHttpHandlers(): void {
    const http = this.#http;
    // The raw TCP accept, for HTTP and HTTPS alike: admission and deadlines start here.
    http.on('connection', (socket: Socket) => this.#guard('connection', () => this.#onTcpConnection(socket), () => socket.destroy()));
    http.on('tlsClientError', (_err: Error, socket: Socket) =>
      this.#guard('tlsClientError', () => {
        this.#m.httpClientErrors.inc();
        socket.destroy();
      }),
    );
    http.on('request', (req: IncomingMessage, res: ServerResponse) => this.#guard('request', () => this.#onRequest(req, res), () => req.socket.destroy()));
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#guard('upgrade', () => this.#onUpgrade(req, socket, head), () => socket.destroy()));
    http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
      this.#guard(
        'clientError',
        () => {
          this.#m.httpClientErrors.inc();
          if (err.code === 'ECONNRESET' || !socket.writable) {
            socket.destroy();
            return;
          }
          const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
          socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
          socket.destroySoon();
        },
        () => socket.destroy(),
      ),
    );
  }

  /** Log without letting a broken logger throw into a handler. */
  #safeLog(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void {
    try {
      this.#log[level](msg, fields);
    } catch {
      // A logger that throws loses its line; the relay goes on.
    }
  }

  /** Run `fn`; an unexpected exception is counted and logged instead of escaping the event loop. */
  #guard(where: string, fn: () => void, onError?: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#m.internalErrors.incLabelled({ where });
      this.#safeLog('error', 'unexpected error in handler', { where, err });
      try {
        onError?.();
      } catch {
        // nothing more to do
      }
    }
  }

  /** {@link #guard} for one client's handler or timer: an exception closes that client only. */
  #guardClient(c: ClientConn, where: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#m.internalErrors.incLabelled({ where });
      this.#safeLog('error', 'unexpected error in a client handler; closing that client', { where, conn: c.id, err });
      try {
        this.#abort(c, 'internal_error');
      } catch {
        try {
          c.socket.destroy();
        } catch {
          // nothing more to do
        }
      }
    }
  }

  /** Cut a client off at once (no close handshake), counted under `reason`. */
  #abort(c: ClientConn, reason: string): void {
    if (!c.closing) {
      c.closing = true;
      this.#m.disconnects.incLabelled({ reason });
      if (c.conn.state !== 'closed') c.conn.close('closed', new RelayError('ERR_RELAY_CLOSED', reason));
      while (c.conn.pollEvent() !== undefined);
    }
    c.ws.terminate();
    this.#release(c);
  }

  #onTcpConnection(raw: Socket): void {
    this.#m.accepted.inc();
    raw.on('error', () => undefined);
    const address = raw.remoteAddress;
    if (address === undefined || raw.destroyed) {
      raw.destroy();
      return;
    }
    const l = this.#limits;
    const t = now();
    const groupKey = addressGroup(address);
    let group = this.#groups.get(groupKey);
    if (group === undefined) {
      if (this.#groups.size >= MAX_TRACKED_ADDRESS_GROUPS) this.#forgetIdleGroups();
      group = { conns: 0, handshaking: 0, tokens: l.acceptBurstPerIp, last: t };
      this.#groups.set(groupKey, group);
    }
    const refuse = (reason: string): void => {
      this.#m.refused.incLabelled({ reason });
      raw.destroy();
    };
    if (l.acceptRatePerIp > 0) {
      // Token bucket (reliability.md §4: per-IP accept rate).
      group.tokens = Math.min(l.acceptBurstPerIp, group.tokens + ((t - group.last) * l.acceptRatePerIp) / 1000);
      group.last = t;
      if (group.tokens < 1) return refuse('accept_rate');
      group.tokens -= 1;
    }
    if (l.maxConnectionsPerIp > 0 && group.conns >= l.maxConnectionsPerIp) return refuse('per_ip_connections');
    if (l.maxHandshakingPerIp > 0 && group.handshaking >= l.maxHandshakingPerIp) return refuse('per_ip_handshaking');
    if (this.#handshaking >= l.maxHandshaking) return refuse('handshaking');
    const tcp: TcpConn = { raw, group, groupKey, acceptedAt: t, idleSince: t, busy: 0, requests: 0, upgraded: false, handshaking: true };
    group.conns++;
    group.handshaking++;
    this.#handshaking++;
    this.#tcp.set(raw, tcp);
    const peer = `${address}|${raw.remotePort}`;
    this.#tcpByPeer.set(peer, tcp);
    raw.once('close', () =>
      this.#guard('tcp close', () => {
        this.#tcp.delete(raw);
        if (this.#tcpByPeer.get(peer) === tcp) this.#tcpByPeer.delete(peer);
        group.conns--;
        this.#leaveHandshake(tcp);
        if (group.conns === 0 && this.#groups.get(groupKey) === group && (l.acceptRatePerIp === 0 || group.tokens >= l.acceptBurstPerIp)) this.#groups.delete(groupKey);
      }),
    );
  }

  /**
   * The table is full: forget the oldest groups that hold no connection (their accept buckets
   * start afresh if they come back). Groups with connections stay — there are no more of
   * those than connections, which the caps bound.
   */
  #forgetIdleGroups(): void {
    let n = 0;
    for (const [key, g] of this.#groups) {
      if (g.conns > 0) continue;
      this.#groups.delete(key);
      if (++n >= 1024) return;
    }
  }

  /** The connection is no longer counted as handshaking (authenticated, or closed). */
  #leaveHandshake(tcp: TcpConn): void {
    if (!tcp.handshaking) return;
    tcp.handshaking = false;
    tcp.group.handshaking--;
    this.#handshaking--;
  }

  /** The record of a socket the HTTP layer hands us (the raw one, or the TLS one over it). */
  #tcpOf(socket: Socket): TcpConn | undefined {
    return this.#tcp.get(socket) ?? this.#tcpByPeer.get(`${socket.remoteAddress}|${socket.remotePort}`);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    // The pairing rendezvous reads its own (bounded) bodies.
    if (this.rendezvous?.handle(req, res)) return;
    const tcp = this.#tcpOf(req.socket);
    if (tcp !== undefined) {
      tcp.busy++;
      tcp.requests++;
      res.once('close', () => {
        tcp.busy--;
        tcp.idleSince = coarseNow;
      });
    }
    // The pkarr relay, after the request is counted (busy sockets are not reaped as idle),
    // limited per client address group like the accept rate; it reads its own bounded bodies.
    if (this.pkarr?.handle(req, res, tcp?.groupKey ?? addressGroup(req.socket.remoteAddress))) {
      this.#m.httpRequests.incLabelled({ path: '/pkarr' });
      return;
    }
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
        if (this.#static !== undefined) {
          void this.#static.serve(req, res, path);
          return;
        }
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
        if (this.#static !== undefined) {
          // Never rejects: every failure is a status.
          void this.#static.serve(req, res, path);
          return;
        }
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
    const tcp = this.#tcpOf(socket);
    if (tcp !== undefined) {
      tcp.upgraded = true;
      tcp.requests++;
    }
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
    // Only authenticated clients take client slots; handshakes have their own caps (at accept).
    if (this.#registry.connections >= this.#limits.maxClients) {
      this.#rejectUpgrade(socket, 503, 'Relay is full');
      return;
    }
    const token = bearerToken(req.headers, url);
    const headerKey = this.#verifyHeaderAuth(req, socket);
    const version = decision.version;
    // RFC 6455 §4.2.2: the 101 with the accept hash and the chosen subprotocol (iroh-wire §1.2).
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(decision.key)}\r\nSec-WebSocket-Protocol: ${subprotocolOf(version)}\r\n\r\n`,
    );
    socket.setNoDelay(true);
    this.#onWebSocket(socket, tcp, version, token, headerKey);
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
      this.#safeLog('debug', 'client auth header did not verify; falling back to the challenge', { result });
    } catch (err) {
      this.#safeLog('debug', 'client auth header unusable; falling back to the challenge', { err });
    }
    return undefined;
  }

  #onWebSocket(socket: Socket, tcp: TcpConn | undefined, version: ProtocolVersion, token: string | undefined, headerKey: PublicKey | undefined): void {
    const acceptedAt = tcp?.acceptedAt ?? now();
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
    const c = new ClientConn(this, { socket, tcp, conn, remoteAddress: socket.remoteAddress, token, version, headerKey }, (c) =>
      new ServerWebSocket(socket, MAX_HANDSHAKE_MESSAGE_BYTES, {
        charge: (bytes) => this.#charge(c, bytes),
        onMessage: (data) => {
          // #guardClient's work inline: this runs once per datagram, without a closure.
          try {
            this.#onMessage(c, data);
          } catch (err) {
            this.#guardClient(c, 'message', () => {
              throw err;
            });
          }
        },
        // RFC 6455 §5.5.3: a pong with the ping's payload, through the same bounded path.
        onPing: (payload) => this.#guardClient(c, 'ping', () => this.#queuePong(c, Opcode.pong, payload, 0, payload.length)),
        onViolation: (code, message) =>
          this.#guardClient(c, 'violation', () => {
            if (code === CloseCode.unsupportedData) this.#m.textMessages.inc();
            if (!c.closed && !c.closing) this.#endConn(c, 'protocol', new RelayError('ERR_RELAY_PROTOCOL', message), code);
          }),
        onClose: (code) => this.#guardClient(c, 'close', () => this.#onWsClose(c, code)),
        onInternalError: (err) =>
          this.#guardClient(c, 'websocket', () => {
            throw err;
          }),
      }),
    );
    if (this.#rate) c.bucket = new TokenBucket(this.#rate.bytesPerSecond, this.#rate.burstBytes, now());
    this.#conns.add(c);
    this.#guardClient(c, 'start', () => {
      conn.start(now(), headerKey);
      this.flush(c);
    });
  }

  /**
   * Charge a frame to the client's bucket as its header arrives (before any work on it).
   * Returns false when reading must stop until the bucket refills.
   */
  #charge(c: ClientConn, bytes: number): boolean {
    if (c.bucket === undefined || c.closing) return true;
    const waitMs = c.bucket.consume(bytes, now());
    if (waitMs <= 0) return true;
    this.#guardClient(c, 'throttle', () => this.#throttle(c, waitMs));
    return false;
  }

  #onMessage(c: ClientConn, data: Buffer): void {
    if (c.closed || c.closing) return;
    const first = data[0];
    if (first === FrameType.Ping && data.length === 1 + PING_DATA_LENGTH && c.conn.state === 'connected') {
      // iroh-wire §1.7: a Ping is answered with a Pong carrying the same data. Answered here
      // rather than by the connection's state machine so pongs are batched (a flood of pings
      // costs a few bytes each, not a few objects each). Unlike other frames it does not
      // postpone our keep-alive: it shows the client sends; our ping checks that it reads.
      this.#queuePong(c, Opcode.binary, data, 0, data.length, FrameType.Pong);
      return;
    }
    if (first === 4 || first === 5) {
      // Datagram frames go through as they are (a tick-resolution clock is enough for them).
      c.conn.handleFrame(coarseNow, data);
    } else {
      // Anything else as a plain Uint8Array view (no copy): Buffer's slice() aliases instead
      // of copying, and the decoders rely on copies.
      c.conn.handleFrame(now(), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
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
      this.#writeTransmits(c);
    }
    c.resumeTimer = setTimeout(() => this.#guardClient(c, 'resume timer', () => this.#resumeReading(c)), waitMs);
  }

  #resumeReading(c: ClientConn): void {
    c.resumeTimer = undefined;
    if (c.closed || c.closing) return;
    const more = c.bucket!.consume(0, now());
    if (more > 0) this.#throttle(c, more);
    else this.#maybeResume(c);
  }

  /** A pong of a client paused for its pong backlog was written: read on (unless rate-limited). */
  pongsDrained(c: ClientConn): void {
    this.#guardClient(c, 'pong drained', () => {
      if (c.pendingPongs >= MAX_PENDING_PONGS || c.closed || c.closing) return;
      c.pausedForPongs = false;
      this.#maybeResume(c);
    });
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
          c.probeDeadline = undefined;
          break;
        case 'closed':
          this.#writeTransmits(c);
          this.#endConn(c, e.reason, e.error);
          return;
      }
    }
    this.#writeTransmits(c);
  }

  /** Whether one more frame of `bytes` fits the client's queue and the global cap. */
  #fits(c: ClientConn, bytes: number): boolean {
    return c.pendingFrames < this.#limits.sendQueueDepth && c.socket.writableLength + bytes <= this.#limits.sendQueueBytes && this.#queuedTotal + bytes <= this.#limits.maxQueuedBytesTotal;
  }

  /** Hand a frame to the client's socket, counted in its queue and the global total. */
  #write(c: ClientConn, frame: Buffer, done: () => void): void {
    if (c.pendingFrames === 0) c.lastProgress = coarseNow;
    c.pendingFrames++;
    const socket = c.socket;
    if (!socket.writableCorked) {
      // Coalesce everything written to this socket in this tick into one writev.
      socket.cork();
      this.#corked.push(c);
      this.#scheduleFlush();
    }
    socket.write(frame, done);
    this.resync(c);
  }

  /** Bring the global total in line with the client's socket queue. */
  resync(c: ClientConn): void {
    const queued = c.closed ? 0 : c.socket.writableLength;
    this.#queuedTotal += queued - c.accounted;
    c.accounted = queued;
  }

  #writeTransmits(c: ClientConn): void {
    for (let f = c.conn.pollTransmit(); f !== undefined; f = c.conn.pollTransmit()) {
      if (!c.ws.open) continue;
      const type = f[0]!;
      if (type === FrameType.Pong) {
        this.#queuePong(c, Opcode.binary, f, 0, f.length);
        continue;
      }
      const h = frameHeaderLength(f.length);
      const out = Buffer.allocUnsafe(h + f.length);
      writeFrameHeader(out, Opcode.binary, f.length);
      out.set(f, h);
      if (!this.#fits(c, out.length)) {
        // Status, EndpointGone, our own Ping: best effort like datagrams, never unbounded.
        this.#m.controlDrops.incLabelled({ frame: controlName(type) });
        continue;
      }
      if (type === FrameType.Ping) this.#m.pingsSent.inc();
      this.#write(c, out, c.onWritten);
    }
  }

  /**
   * Queue a pong: a WebSocket frame with `opcode` around `src[from..to)`, its first byte
   * replaced by `firstByte` when given (a relay Ping's type byte becomes Pong's). Pongs answered
   * in one turn of the event loop go out as one write at its end.
   *
   * At most {@link MAX_PENDING_PONGS} wait unwritten: with that many the relay stops reading
   * from the client until they are written — as iroh's relay blocks its read loop on the pong
   * write. So a client that pings without reading fills its own TCP window, its socket stops
   * making write progress, and the write timeout closes it; one that reads gets every pong. A
   * pong that still finds the queue full (a ping already in the read buffer) is dropped and
   * counted.
   */
  #queuePong(c: ClientConn, opcode: number, src: Uint8Array, from: number, to: number, firstByte?: number): void {
    if (!c.ws.open || c.closing) return;
    const t = now();
    c.pongTokens = Math.min(PONG_BURST, c.pongTokens + ((t - c.pongRefilledAt) * PONG_RATE_PER_SECOND) / 1000);
    c.pongRefilledAt = t;
    if (c.pongTokens < 1) {
      this.#m.pongsDropped.inc();
      this.#pingFlood(c, t);
      return;
    }
    c.pongTokens -= 1;
    const n = to - from;
    const size = frameHeaderLength(n) + n;
    if (c.pendingPongs >= MAX_PENDING_PONGS || !this.#fits(c, size + c.pongBatchBytes)) {
      this.#m.pongsDropped.inc();
      return;
    }
    let batch = c.pongBatch;
    if (batch === undefined || c.pongBatchBytes + size > batch.length) {
      if (batch !== undefined) this.#flushPongs(c);
      // Room for a full backlog of relay pongs; a WebSocket pong (≤ 127 bytes) may start anew.
      batch = Buffer.allocUnsafe(Math.max(size, MAX_PENDING_PONGS * (2 + 1 + PING_DATA_LENGTH)));
      c.pongBatch = batch;
      if (this.#pongClients.length === 0 || this.#pongClients.at(-1) !== c) this.#pongClients.push(c);
      this.#scheduleFlush();
    }
    let off = c.pongBatchBytes;
    off += writeFrameHeader(batch.subarray(off), opcode, n);
    batch.set(src.subarray(from, to), off);
    if (firstByte !== undefined) batch[off] = firstByte;
    c.pongBatchBytes = off + n;
    c.pongBatchCount++;
    c.pendingPongs++;
    if (c.pendingPongs >= MAX_PENDING_PONGS && !c.pausedForPongs) {
      c.pausedForPongs = true;
      c.ws.pause();
    }
  }

  /**
   * More pings than {@link PONG_RATE_PER_SECOND}: stop reading until the bucket has a token
   * again, and probe the client with our own Ping (at most once a second). One that reads
   * answers it and goes on at the allowed rate; one that does not is closed when the write
   * timeout passes without the answer.
   */
  #pingFlood(c: ClientConn, t: number): void {
    if (c.pongTimer === undefined) {
      c.ws.pause();
      const wait = Math.max(1, Math.ceil(((1 - c.pongTokens) * 1000) / PONG_RATE_PER_SECOND));
      c.pongTimer = setTimeout(
        () =>
          this.#guardClient(c, 'pong timer', () => {
            c.pongTimer = undefined;
            this.#maybeResume(c);
          }),
        wait,
      );
    }
    if (c.probeDeadline === undefined && t - c.lastProbeAt >= 1_000 && c.conn.pingNow(t)) {
      c.lastProbeAt = t;
      c.probeDeadline = t + this.#limits.writeTimeoutMs;
      this.#m.probes.inc();
      this.#writeTransmits(c);
    }
  }

  /** Read from a client again once nothing holds it back (rate limit, pong backlog, ping flood). */
  #maybeResume(c: ClientConn): void {
    if (c.closed || c.closing) return;
    if (c.resumeTimer === undefined && !c.pausedForPongs && c.pongTimer === undefined) c.ws.resume();
  }

  /** Write a client's batched pongs as one frame of the queue. */
  #flushPongs(c: ClientConn): void {
    const batch = c.pongBatch;
    const count = c.pongBatchCount;
    const bytes = c.pongBatchBytes;
    c.pongBatch = undefined;
    c.pongBatchBytes = 0;
    c.pongBatchCount = 0;
    if (batch === undefined || count === 0) return;
    if (!c.ws.open || c.closing) {
      c.pendingPongs -= count;
      return;
    }
    this.#write(c, batch.subarray(0, bytes), () => {
      c.pendingPongs -= count;
      c.onWritten();
      if (c.pausedForPongs) this.pongsDrained(c);
    });
  }

  #scheduleFlush(): void {
    if (!this.#uncorkScheduled) {
      this.#uncorkScheduled = true;
      process.nextTick(this.#uncorkAll);
    }
  }

  #onAuthenticated(c: ClientConn, publicKey: PublicKey, mechanism: 'challenge' | 'keying-material'): void {
    c.publicKey = publicKey;
    const request = { endpointId: publicKey, token: c.token, remoteAddress: c.remoteAddress };
    let decision: AccessDecision | Promise<AccessDecision>;
    try {
      decision = this.#accessHook ? this.#accessHook(request) : this.#accessList.check(request);
    } catch (err) {
      this.#safeLog('error', 'access hook threw; denying', { err });
      decision = { allow: false, reason: 'access control failed' };
    }
    const apply = (d: AccessDecision): void => {
      if (c.closed || c.closing || c.conn.state !== 'authenticated') return;
      if (typeof d !== 'object' || d === null || !d.allow || this.#registry.connections >= this.#limits.maxClients) {
        const reason = typeof d === 'object' && d !== null && !d.allow ? (d.reason ?? 'not authorized') : typeof d === 'object' && d !== null && d.allow ? 'relay is full' : 'access control failed';
        this.#m.authFailures.incLabelled({ reason: reason === 'relay is full' ? 'full' : 'denied' });
        this.#safeLog('info', 'client denied', { endpoint: publicKey.toString(), reason, remote: c.remoteAddress });
        c.conn.deny(reason);
        this.flush(c);
        return;
      }
      c.conn.accept(coarseNow);
      c.keyId = keyId(publicKey.bytes);
      if (c.tcp !== undefined) this.#leaveHandshake(c.tcp);
      c.ws.maxMessageBytes = this.#limits.maxFrameBytes;
      this.#registry.register(c.keyId, c);
      c.entry = this.#registry.get(c.keyId);
      this.#m.handshakes.incLabelled({ mechanism });
      this.#safeLog('debug', 'client connected', { conn: c.id, endpoint: publicKey.toString(), mechanism, version: c.version, remote: c.remoteAddress });
      this.flush(c);
    };
    if (decision instanceof Promise) {
      decision.then(
        (d) => this.#guardClient(c, 'access', () => apply(d)),
        (err: unknown) =>
          this.#guardClient(c, 'access', () => {
            this.#safeLog('error', 'access hook rejected; denying', { err });
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
      // A real copy: dst is a view into a socket read (Buffer's slice() would alias it and pin
      // that whole chunk for as long as the cache lives).
      cached = { bytes: new Uint8Array(dst), id: dstId, entry };
      src.lastDst = cached;
    }
    const target = cached.entry.active;
    if (target.closing || target.closed || !target.ws.open) {
      this.#dropClosed.inc();
      return;
    }
    const n = forwardedFrameLength(frame.length, typeLength);
    const h = frameHeaderLength(n);
    // iroh PER_CLIENT_SEND_QUEUE_DEPTH: a full queue drops instead of blocking the sender.
    if (target.pendingFrames >= this.#limits.sendQueueDepth || target.socket.writableLength >= this.#limits.sendQueueBytes) {
      this.#dropQueueFull.inc();
      return;
    }
    if (this.#queuedTotal + h + n > this.#limits.maxQueuedBytesTotal) {
      this.#dropGlobalFull.inc();
      return;
    }
    // One buffer per datagram: WebSocket header, then the forwarded frame. allocUnsafe: pooled
    // and not zero-filled; every byte is written just below.
    const out = Buffer.allocUnsafe(h + n);
    writeFrameHeader(out, Opcode.binary, n);
    writeForwardedFrame(out, frame, typeLength, batch, src.publicKey.bytes, h);
    this.#write(target, out, target.onWritten);
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
    const pongs = this.#pongClients;
    this.#pongClients = [];
    for (const c of pongs) this.#guardClient(c, 'pongs', () => this.#flushPongs(c));
    const list = this.#corked;
    this.#corked = [];
    for (const c of list) {
      this.#guardClient(c, 'uncork', () => {
        while (c.socket.writableCorked > 0) c.socket.uncork();
        this.resync(c);
      });
    }
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
    // Sends the close frame; a peer that never answers is cut off after a grace period.
    c.ws.close(wsCode ?? wsCloseCodeFor(reason), error.message);
    this.#release(c);
  }

  #recordEnd(c: ClientConn, reason: ServerCloseReason, error: RelayError): void {
    if (reason === 'handshake-timeout' || reason === 'handshake-protocol' || reason === 'signature-invalid') {
      this.#m.authFailures.incLabelled({ reason: reason.replace(/-/g, '_') });
    }
    this.#m.disconnects.incLabelled({ reason: reason.replace(/-/g, '_') });
    if (reason !== 'closed') this.#safeLog('debug', 'client connection ended', { conn: c.id, endpoint: c.authenticated ? c.publicKey.toString() : undefined, reason, error: error.message });
  }

  /** Remove a connection from every table (idempotent). */
  #release(c: ClientConn): void {
    if (!this.#conns.delete(c)) return;
    if (c.resumeTimer !== undefined) {
      clearTimeout(c.resumeTimer);
      c.resumeTimer = undefined;
    }
    if (c.pongTimer !== undefined) {
      clearTimeout(c.pongTimer);
      c.pongTimer = undefined;
    }
    if (c.keyId !== undefined) {
      this.#registry.unregister(c.keyId, c);
      c.entry = undefined;
    }
    c.lastDst = undefined;
  }

  #onWsClose(c: ClientConn, code: number): void {
    c.markClosed();
    if (!c.closing) {
      c.closing = true;
      const err = new RelayError('ERR_RELAY_CLOSED', `WebSocket closed (${code})`);
      c.conn.close('closed', err);
      while (c.conn.pollEvent() !== undefined);
      this.#recordEnd(c, 'closed', err);
    }
    this.resync(c);
    this.#release(c);
  }

  /** Periodic deadlines: accept-phase deadlines, pings, pong deadlines, write timeouts. */
  readonly #onTick = (): void => {
    const t = now();
    coarseNow = t;
    this.#guard('tick', () => this.#tcpDeadlines(t));
    for (const c of this.#conns) this.#guardClient(c, 'tick', () => this.#clientTick(c, t));
  };

  #tcpDeadlines(t: number): void {
    const l = this.#limits;
    const establish = t - l.handshakeTimeoutMs;
    const idle = t - Math.min(l.requestTimeoutMs, l.handshakeTimeoutMs);
    for (const tcp of this.#tcp.values()) {
      // Upgraded connections time out through their state machine; authenticated ones never.
      if (tcp.upgraded || !tcp.handshaking || tcp.busy > 0) continue;
      // TLS not done, or no request yet, by the establish deadline counted from the accept;
      // and any socket waiting for a request longer than the request timeout.
      if (tcp.acceptedAt <= establish || tcp.idleSince <= idle) {
        if (tcp.requests === 0) this.#m.authFailures.incLabelled({ reason: 'handshake_timeout' });
        tcp.raw.destroy();
      }
    }
    if (l.acceptRatePerIp > 0) {
      // Forget groups with no connection whose bucket has refilled.
      for (const [key, g] of this.#groups) {
        if (g.conns === 0 && g.tokens + ((t - g.last) * l.acceptRatePerIp) / 1000 >= l.acceptBurstPerIp) this.#groups.delete(key);
      }
    }
  }

  #clientTick(c: ClientConn, t: number): void {
    if (c.closing) return;
    if (c.pendingFrames > 0 && t - c.lastProgress > this.#limits.writeTimeoutMs) {
      // iroh SERVER_WRITE_TIMEOUT: a client that does not read is dropped, whatever it sends.
      this.#abort(c, 'write_timeout');
      return;
    }
    if (c.probeDeadline !== undefined && t > c.probeDeadline) {
      // It flooded us with pings and did not answer ours within the write timeout.
      this.#abort(c, 'probe_timeout');
      return;
    }
    const deadline = c.conn.pollTimeout();
    if (deadline !== undefined && deadline <= t) {
      c.conn.handleTimeout(t);
      this.flush(c);
    }
  }

  async listen(): Promise<void> {
    const host = this.#options.host ?? DEFAULT_HOST;
    await listen(this.#http, this.#options.port ?? 0, host);
    this.port = (this.#http.address() as AddressInfo).port;
    this.url = `${this.#tls ? 'https' : 'http'}://${hostForUrl(host)}:${this.port}/`;
    const plainTimeouts = { headersTimeout: this.#limits.requestTimeoutMs, requestTimeout: this.#limits.requestTimeoutMs, keepAliveTimeout: Math.min(5_000, this.#limits.requestTimeoutMs) };
    if (this.#tls && this.#options.captivePortalPort !== undefined) {
      const captive = createHttpServer({ maxHeaderSize: this.#limits.maxHeaderBytes, ...plainTimeouts }, (req, res) =>
        this.#guard(
          'captive',
          () => {
            req.resume();
            const path = (req.url ?? '/').split('?')[0];
            if (path === '/generate_204' && (req.method === 'GET' || req.method === 'HEAD')) this.#serveGenerate204(req, res);
            else res.writeHead(404).end('Not Found\n');
          },
          () => req.socket.destroy(),
        ),
      );
      captive.maxConnections = this.#limits.maxHandshaking;
      captive.on('clientError', (_e, s) => s.destroy());
      this.#captive = captive;
      await listen(captive, this.#options.captivePortalPort, host);
      this.captivePortalUrl = `http://${hostForUrl(host)}:${(captive.address() as AddressInfo).port}/generate_204`;
    }
    const mo = this.#options.metrics;
    if (mo !== undefined && mo !== false) {
      // Loopback unless asked otherwise, whatever the relay's own host is.
      const mhost = mo.host ?? DEFAULT_METRICS_HOST;
      const server = createHttpServer(plainTimeouts, (req, res) =>
        this.#guard(
          'metrics',
          () => {
            req.resume();
            const path = (req.url ?? '/').split('?')[0];
            if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
              res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(this.metricsText());
            } else res.writeHead(404).end('Not Found\n');
          },
          () => req.socket.destroy(),
        ),
      );
      server.maxConnections = 64;
      server.on('clientError', (_e, s) => s.destroy());
      this.#metricsServer = server;
      await listen(server, mo.port ?? 0, mhost);
      this.metricsUrl = `http://${hostForUrl(mhost)}:${(server.address() as AddressInfo).port}/metrics`;
    }
    const qad = this.#options.qad;
    if (qad !== undefined && qad !== false) {
      try {
        this.#qad = await QadServer.start({
          host: qad.host ?? host,
          port: qad.port ?? 0,
          ...(this.#options.tls ? { tls: this.#options.tls } : {}),
          maxConnections: qad.maxConnections ?? Math.max(this.#limits.maxClients, 1),
          logger: this.#log,
        });
        this.qadPort = this.#qad.port;
      } catch (err) {
        // The relay itself works without it (iroh clients fall back to HTTPS probes).
        this.#safeLog('warn', 'QUIC address discovery not served', { error: (err as Error).message });
      }
    }
    this.#tick = setInterval(this.#onTick, this.#timing.tickMs);
    this.#tick.unref();
    this.#safeLog('info', 'relay listening', { url: this.url, metrics: this.metricsUrl, captivePortal: this.captivePortalUrl, qadPort: this.qadPort, qadVerifiable: this.#qad?.verifiable, tls: this.#tls, version: RELAY_SERVER_VERSION });
  }

  stats(): RelayServerStats {
    const m = this.#m;
    return {
      clients: this.#registry.connections,
      endpoints: this.#registry.endpoints,
      handshaking: this.#conns.size - this.#registry.connections,
      tcpConnections: this.#tcp.size,
      unauthenticated: this.#handshaking,
      bytesRelayed: m.bytesRelayed.get(),
      datagramsRelayed: m.datagramsRelayed.get(),
      framesRelayed: m.framesRelayed.get(),
      dropsNoRecipient: m.drops.get({ reason: 'no_recipient' }),
      dropsQueueFull: m.drops.get({ reason: 'queue_full' }) + m.drops.get({ reason: 'global_queue_full' }),
      authFailures: m.authFailures.total(),
      rateLimited: m.rateLimited.get(),
      sentToEntries: this.#registry.sentToSize(),
      queuedBytes: this.#queuedTotal,
      pongsDropped: m.pongsDropped.get(),
      writeTimeouts: m.disconnects.get({ reason: 'write_timeout' }),
      probeTimeouts: m.disconnects.get({ reason: 'probe_timeout' }),
      connectionsRefused: m.refused.total(),
      internalErrors: m.internalErrors.total(),
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
        this.#safeLog('info', 'access revoked; disconnecting client', { endpoint: c.publicKey.toString() });
        this.closeClient(c, 'denied', new RelayError('ERR_RELAY_DENIED', 'access revoked'), CloseCode.policy);
      }
    }
  }

  close(options: { graceful?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    this.#closing ??= this.#close(options.graceful ?? true, options.signal);
    return this.#closing;
  }

  async #close(graceful: boolean, signal: AbortSignal | undefined): Promise<void> {
    this.#safeLog('info', 'relay shutting down', { graceful, clients: this.#registry.connections });
    if (this.#tick !== undefined) clearInterval(this.#tick);
    const stopped = closeServer(this.#http);
    const conns = [...this.#conns];
    const allClosed = Promise.all(conns.map((c) => c.whenClosed()));
    for (const c of conns) {
      this.#guardClient(c, 'shutdown', () => {
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
          if (graceful && c.ws.open) c.ws.close(CloseCode.serviceRestart, 'relay restarting');
          else c.ws.terminate();
        }
        this.#release(c);
      });
    }
    for (const tcp of this.#tcp.values()) if (tcp.handshaking && !tcp.upgraded) tcp.raw.destroy();
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
    for (const tcp of this.#tcp.values()) tcp.raw.destroy();
    await stopped;
    if (this.#captive !== undefined) await closeServer(this.#captive, true);
    if (this.#metricsServer !== undefined) await closeServer(this.#metricsServer, true);
    await this.#qad?.close();
    this.#safeLog('info', 'relay stopped');
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
  signal?.addEventListener('abort', () => void server.close({ graceful: true }).catch(() => undefined), { once: true });
  return server;
}
