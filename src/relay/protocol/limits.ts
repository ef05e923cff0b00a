/**
 * Every size, count and time of the relay protocol that a peer can push against, in one
 * place. Values marked "iroh" are iroh-relay 1.0.2's own (`shared/docs/iroh-wire.md` §1.6,
 * §1.7, `shared/docs/reliability.md` §4); the others are ours, chosen so an honest iroh peer
 * never comes near them.
 *
 * Times are milliseconds. The sans-IO cores take `now` as a number of milliseconds from any
 * monotonic origin.
 *
 * @module
 */

/**
 * iroh `MAX_PACKET_SIZE`: the most bytes a frame may carry after its type. The sender refuses
 * to build a larger frame and the receiver rejects one (iroh-wire §1.6 "Sizes").
 */
export const MAX_PACKET_SIZE = 64 * 1024;

/**
 * iroh `MAX_FRAME_SIZE`: the largest WebSocket message either side accepts (iroh-wire §1.3).
 * The WebSocket library checks it against the length in the frame header before it buffers
 * anything, so a 2^63-byte claim costs nothing.
 */
export const MAX_FRAME_SIZE = 1024 * 1024;

/** Length of the random challenge in `ServerChallenge` (iroh-wire §1.5). */
export const CHALLENGE_LENGTH = 16;

/** Length of the payload of `Ping` and `Pong` (iroh-wire §1.6). */
export const PING_DATA_LENGTH = 8;

/**
 * Longest `ServerDeniesAuth` reason we send or accept, in UTF-8 bytes. iroh's reasons are a
 * few words; a longer one is a hostile relay trying to make us allocate.
 */
export const MAX_DENY_REASON_BYTES = 1024;

/**
 * Longest `Health` text (v1 only) we accept. iroh's texts are one sentence; it is bounded by
 * {@link MAX_PACKET_SIZE} anyway, this keeps what we log and emit small.
 */
export const MAX_HEALTH_TEXT_BYTES = 4096;

/**
 * Longest `x-iroh-relay-client-auth-v1` header value we decode: the real one is exactly 151
 * base64url characters (113 bytes, iroh-wire §1.5). Anything much longer is not one.
 */
export const MAX_CLIENT_AUTH_HEADER_CHARS = 256;

/** iroh `PING_INTERVAL`: a side pings after this much silence from the other (iroh-wire §1.7). */
export const PING_INTERVAL_MS = 15_000;

/**
 * iroh's extra random delay on top of {@link PING_INTERVAL_MS} for the relay's own pings, so
 * that thousands of clients are not pinged in the same tick: uniformly 1–5 s.
 */
export const SERVER_PING_JITTER_MIN_MS = 1_000;
export const SERVER_PING_JITTER_MAX_MS = 5_000;

/** iroh `PingTracker` `PING_TIMEOUT`: the longest wait for a Pong. */
export const PONG_TIMEOUT_MS = 5_000;

/**
 * iroh `MIN_HEALTH_CHECK_TIMEOUT`: the Pong deadline is 3 × the last RTT, clamped to
 * [this, {@link PONG_TIMEOUT_MS}].
 */
export const MIN_PONG_TIMEOUT_MS = 500;

/**
 * iroh `ESTABLISH_TIMEOUT`: from TCP accept to `ServerConfirmsAuth` — TLS, the HTTP upgrade
 * and the relay handshake together (reliability.md §4). A slowloris gets no more.
 */
export const HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * iroh client `CONNECT_TIMEOUT`: TCP + TLS + upgrade + relay handshake, from the client's
 * side (iroh-wire §1.1).
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/** `RelayClient.close()` waits this long at most for the WebSocket closing handshake. */
export const CLOSE_TIMEOUT_MS = 2_000;

/** iroh `PER_CLIENT_SEND_QUEUE_DEPTH`: datagram frames queued towards one client (iroh-wire §1.7). */
export const PER_CLIENT_SEND_QUEUE_DEPTH = 512;

/**
 * Bytes queued towards one client, whatever the frame count: 512 × 64 KiB would be 32 MiB per
 * recipient (reliability.md §4 "Slow consumers"); this caps it at 4 MiB as reliability.md §4
 * recommends.
 */
export const PER_CLIENT_SEND_QUEUE_BYTES = 4 * 1024 * 1024;

/**
 * iroh `SERVER_WRITE_TIMEOUT`: a client whose queued bytes make no progress for this long is
 * dead or hostile (it never reads) and is disconnected.
 */
export const SERVER_WRITE_TIMEOUT_MS = 2_000;

/**
 * How many peers one client may have sent to that the relay remembers, to tell them
 * `EndpointGone` when it leaves. iroh's set is unbounded; a client spraying thousands of
 * connected ids would grow it without limit. Past the bound the oldest entry is forgotten
 * (its EndpointGone is best effort anyway). At ~100 bytes an entry this caps the bookkeeping
 * at ~100 KiB per client.
 */
export const MAX_SENT_TO_PER_CLIENT = 1024;

/**
 * Older connections kept per EndpointId when the same id connects again (iroh keeps all of
 * them). Past the bound the oldest inactive connection is closed (reliability.md §5.G.5).
 */
export const MAX_INACTIVE_PER_ENDPOINT = 8;

/** iroh's reconnect backoff: exponential from 10 ms, capped at 16 s, with jitter (iroh-wire §1.1). */
export const RECONNECT_BACKOFF_MIN_MS = 10;
export const RECONNECT_BACKOFF_MAX_MS = 16_000;

/** iroh: datagrams queued while (re)connecting are dropped after this long (iroh-wire §1.7). */
export const QUEUED_DATAGRAM_MAX_AGE_MS = 3_000;

/**
 * Datagram frames a client queues while it is not connected, and the most bytes it lets the
 * WebSocket buffer hold before it drops instead of queueing more (never unbounded).
 */
export const CLIENT_SEND_QUEUE_DEPTH = 512;
export const CLIENT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/**
 * Received datagram frames a client holds for a slow `incoming()` reader before it drops
 * (reliability.md §5.F.3: the receive path drops instead of queueing in JS).
 */
export const CLIENT_RECV_QUEUE_DEPTH = 1024;

/** Public keys remembered by a {@link KeyCache} (iroh's default is 1 Mi; ours is per client). */
export const KEY_CACHE_CAPACITY = 4096;
