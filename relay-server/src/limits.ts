/**
 * Every limit of the deployable relay server, with its default and the range a config file,
 * flag or option may set it to (protocol constants such as the 64 KiB packet size are in
 * `src/relay/protocol/limits.ts`). reliability.md §4 lists what iroh-relay does against abuse
 * and the defaults it recommends for us; each value below says where it comes from.
 *
 * What a client controls is bounded in three places:
 *
 * - before it is authenticated: per address group (an IPv4 address, an IPv6 /64) at most
 *   {@link DEFAULT_MAX_CONNECTIONS_PER_IP} connections, of which
 *   {@link DEFAULT_MAX_HANDSHAKING_PER_IP} still in the handshake, and a new connection at
 *   most every 1/{@link DEFAULT_ACCEPT_RATE_PER_IP} s (burst {@link DEFAULT_ACCEPT_BURST_PER_IP});
 *   all handshakes together at most {@link DEFAULT_MAX_HANDSHAKING}; a socket without a request
 *   is closed after {@link DEFAULT_REQUEST_TIMEOUT_MS}, and TLS + upgrade + relay handshake
 *   must be done {@link DEFAULT_HANDSHAKE_TIMEOUT_MS} after the TCP accept;
 * - what it sends: every WebSocket frame (binary, text, control) is charged to its byte-rate
 *   bucket when its header arrives, before the payload is read or unmasked;
 * - what the relay queues towards it: {@link DEFAULT_SEND_QUEUE_DEPTH} frames and
 *   {@link DEFAULT_SEND_QUEUE_BYTES} bytes, of which at most {@link MAX_PENDING_PONGS} pongs
 *   (past that the relay stops reading from the client), at most {@link PONG_RATE_PER_SECOND}
 *   pongs a second (past that it stops reading and probes the client with a Ping),
 *   {@link DEFAULT_MAX_QUEUED_BYTES_TOTAL} across all clients, and a socket that makes no write
 *   progress for {@link DEFAULT_WRITE_TIMEOUT_MS} is closed whatever the client sends.
 *
 * @module
 */
import {
  HANDSHAKE_TIMEOUT_MS,
  MAX_FRAME_SIZE,
  MAX_INACTIVE_PER_ENDPOINT,
  MAX_PACKET_SIZE,
  MAX_SENT_TO_PER_CLIENT,
  PER_CLIENT_SEND_QUEUE_BYTES,
  PER_CLIENT_SEND_QUEUE_DEPTH,
  SERVER_WRITE_TIMEOUT_MS,
} from '../../src/relay/protocol/limits.ts';

/**
 * Authenticated relay clients at once; more get 503 at the upgrade. Each idle client costs a
 * socket and 12–18 KB (`npm run bench relay`); 10,000 fits a small VM.
 */
export const DEFAULT_MAX_CLIENTS = 10_000;

/**
 * Connections not yet authenticated, all sources together: plain HTTP requests (`/ping`
 * probes), TLS handshakes, upgrades waiting for `ClientAuth`. Kept apart from
 * {@link DEFAULT_MAX_CLIENTS} so half-open connections cannot take the clients' slots.
 */
export const DEFAULT_MAX_HANDSHAKING = 1_024;

/**
 * TCP connections per address group (IPv4 address, IPv6 /64 — one host or one customer of a
 * provider), authenticated or not; 0 = unlimited. A NAT puts a household or an office behind
 * one address, so this is well above one device's needs (one connection per relay). Set 0
 * behind a TLS-terminating proxy, where every client has the proxy's address.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 64;

/** Of those, still in the handshake at once (reliability.md §4 recommends 16 per IP). */
export const DEFAULT_MAX_HANDSHAKING_PER_IP = 16;

/**
 * New TCP connections per address group: a token bucket of this many per second with this
 * burst (reliability.md §4: 10/s, burst 20 — iroh declares `accept_conn_limit` but does not
 * implement it). 0 turns it off. A refused connection is closed at once, before TLS.
 */
export const DEFAULT_ACCEPT_RATE_PER_IP = 10;
export const DEFAULT_ACCEPT_BURST_PER_IP = 20;

/**
 * Address groups remembered without a connection (for their accept bucket). A bucket back at
 * its burst is forgotten on the next tick, so only groups that connected in the last few
 * seconds are held; past this bound the oldest of them are forgotten early. Groups with a
 * connection are always kept: the connection caps bound how many there are.
 */
export const MAX_TRACKED_ADDRESS_GROUPS = 65_536;

/**
 * From TCP accept to a complete HTTP request head, and between requests on a keep-alive
 * connection: an idle socket that never sends a request is closed after this long.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/**
 * From TCP accept to `ServerConfirmsAuth`: TLS, the upgrade and the relay handshake together
 * (iroh `ESTABLISH_TIMEOUT` is 30 s; reliability.md §4 recommends 10 s, which is also the
 * iroh client's own connect timeout, so an honest client never needs more).
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = Math.min(HANDSHAKE_TIMEOUT_MS, 10_000);

/** Largest HTTP request head (request line + headers); larger gets 431. iroh's is ~250 bytes. */
export const MAX_HEADER_BYTES = 8 * 1024;

/** Largest WebSocket message once authenticated (iroh `MAX_FRAME_SIZE`, iroh-wire §1.3). */
export const DEFAULT_MAX_FRAME_BYTES = MAX_FRAME_SIZE;

/**
 * Largest WebSocket message before the client is authenticated: the only frame it may send
 * then is `ClientAuth` (98 bytes), so a 1 MiB claim from a stranger is refused from its header.
 */
export const MAX_HANDSHAKE_MESSAGE_BYTES = 1_024;

/**
 * Fragments one WebSocket message may be split into (RFC 6455 §5.4 sets no bound; no relay
 * client fragments at all). Each fragment is a separate small allocation, so a message of a
 * million one-byte fragments must not be possible.
 */
export const MAX_MESSAGE_FRAGMENTS = 64;

/** Frames queued towards one client (iroh `PER_CLIENT_SEND_QUEUE_DEPTH`). */
export const DEFAULT_SEND_QUEUE_DEPTH = PER_CLIENT_SEND_QUEUE_DEPTH;

/** Bytes queued towards one client, every frame counted (reliability.md §4: 4 MiB). */
export const DEFAULT_SEND_QUEUE_BYTES = PER_CLIENT_SEND_QUEUE_BYTES;

/**
 * Bytes queued towards all clients together. 10,000 clients × 4 MiB would be 40 GiB; past
 * this total new frames are dropped (counted) until sockets drain.
 */
export const DEFAULT_MAX_QUEUED_BYTES_TOTAL = 256 * 1024 * 1024;

/**
 * Pongs (answers to relay `Ping` frames and to WebSocket pings) queued towards one client.
 * With this many unwritten the relay stops reading from that client until one is written, so
 * a client that pings without reading fills its own TCP window and is closed by the write
 * timeout; a pong that still finds the queue full is dropped (counted). An honest client has
 * one ping outstanding. Not smaller: each pause and resume costs a turn of the event loop,
 * and the sooner a non-reader's window fills the sooner it is found out. Not larger: the
 * faster a flood of pings is answered, the more garbage per second, and V8 grows its young
 * generation (RSS) with the allocation rate.
 */
export const MAX_PENDING_PONGS = 16;

/**
 * Pings (relay `Ping` and WebSocket pings) answered per client per second, with this burst. An
 * iroh client pings every 15 s. Past the rate the relay stops reading from the client until
 * the bucket refills, and probes it with a Ping of its own: a client that does not read cannot
 * answer, and is closed when the write timeout has passed without the answer. So a flood of
 * pings costs the relay a few dozen small reads a second instead of megabytes of them.
 */
export const PONG_RATE_PER_SECOND = 50;
export const PONG_BURST = 100;

/**
 * A client whose socket makes no write progress this long while something is queued for it
 * is closed, whatever it keeps sending (iroh `SERVER_WRITE_TIMEOUT`).
 */
export const DEFAULT_WRITE_TIMEOUT_MS = SERVER_WRITE_TIMEOUT_MS;

/** Older connections kept per EndpointId (reliability.md §5.G.5). */
export const DEFAULT_MAX_INACTIVE_PER_ENDPOINT = MAX_INACTIVE_PER_ENDPOINT;

/** Peers remembered per client for `EndpointGone`. */
export const DEFAULT_MAX_SENT_TO_PER_CLIENT = MAX_SENT_TO_PER_CLIENT;

/**
 * Per-client receive rate (bytes/s) and burst, on by default as reliability.md §4 advises;
 * the burst is at least one maximal frame (1 MiB) as iroh's source comment says it must be.
 */
export const DEFAULT_RATE_LIMIT_BYTES_PER_SECOND = 2 * 1024 * 1024;
export const DEFAULT_RATE_LIMIT_BURST_BYTES = 2 * 1024 * 1024;

/** Longest config file read (bytes); real ones are a few hundred bytes. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** Nesting of arrays and inline tables in a TOML config file (ours is at most 2 deep). */
export const MAX_CONFIG_DEPTH = 16;

/** An inclusive integer range an option must fall in. */
export interface IntRange {
  min: number;
  max: number;
}

/**
 * What each numeric limit may be set to. `min: 0` where 0 means "off". Upper bounds keep
 * every value an exact integer, every timer far below Node's 2^31 − 1 ms (a longer delay
 * silently becomes 1 ms: `tick_ms = 3000000000` would spin), and every size far from what
 * would exhaust memory by configuration alone.
 */
export const LIMIT_RANGES = {
  maxClients: { min: 1, max: 1_000_000 },
  maxHandshaking: { min: 1, max: 1_000_000 },
  maxConnectionsPerIp: { min: 0, max: 1_000_000 },
  maxHandshakingPerIp: { min: 0, max: 1_000_000 },
  acceptRatePerIp: { min: 0, max: 1_000_000 },
  acceptBurstPerIp: { min: 1, max: 1_000_000 },
  requestTimeoutMs: { min: 100, max: 3_600_000 },
  handshakeTimeoutMs: { min: 100, max: 3_600_000 },
  maxHeaderBytes: { min: 1_024, max: 64 * 1024 },
  // At least one maximal datagram frame (type, key, segment size, 64 KiB).
  maxFrameBytes: { min: MAX_PACKET_SIZE + 64, max: 16 * 1024 * 1024 },
  sendQueueDepth: { min: 1, max: 1_000_000 },
  sendQueueBytes: { min: 64 * 1024, max: 1024 * 1024 * 1024 },
  maxQueuedBytesTotal: { min: 1024 * 1024, max: 64 * 1024 * 1024 * 1024 },
  writeTimeoutMs: { min: 100, max: 3_600_000 },
  maxInactivePerEndpoint: { min: 1, max: 1_024 },
  maxSentToPerClient: { min: 1, max: 65_536 },
} as const satisfies Record<string, IntRange>;

/** Ranges of the timers (milliseconds). */
export const TIMING_RANGES = {
  tickMs: { min: 5, max: 10_000 },
  pingIntervalMs: { min: 10, max: 3_600_000 },
  pingJitterMinMs: { min: 0, max: 3_600_000 },
  pingJitterMaxMs: { min: 0, max: 3_600_000 },
  pongTimeoutMs: { min: 10, max: 3_600_000 },
  restartReconnectInMs: { min: 0, max: 3_600_000 },
  restartTryForMs: { min: 0, max: 3_600_000 },
  shutdownGraceMs: { min: 0, max: 3_600_000 },
} as const satisfies Record<string, IntRange>;

/** Ranges of the other numeric options. */
export const OPTION_RANGES = {
  port: { min: 0, max: 65_535 },
  // 0 turns the rate limit off; the ceiling is far above any NIC.
  rateLimitBytesPerSecond: { min: 0, max: 2 ** 40 },
  rateLimitBurstBytes: { min: 1_024, max: 2 ** 40 },
} as const satisfies Record<string, IntRange>;

/**
 * `--static DIR`: a URL path longer than this (bytes, before decoding) gets 414 without
 * touching the file system; so does one with more segments than {@link MAX_STATIC_SEGMENTS}.
 */
export const MAX_STATIC_PATH_BYTES = 1024;
export const MAX_STATIC_SEGMENTS = 16;
/** Largest file `--static` serves (a page, a bundle: far below this); larger ones are 404. */
export const MAX_STATIC_FILE_BYTES = 64 * 1024 * 1024;

/** Whether `value` is an integer in `range`. */
export function inRange(value: unknown, range: IntRange): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= range.min && value <= range.max;
}
