/**
 * Limits of the QUIC/TLS core: every length, count or size a peer controls is checked
 * against one of these before anything is allocated.
 *
 * @module
 */

/**
 * Largest TLS handshake message accepted (body bytes). An iroh ClientHello is ~300 bytes and a
 * raw-public-key Certificate 60; WebPKI chains (QAD relays) reach ~5 KiB. rustls allows 64 KiB.
 */
export const MAX_TLS_HANDSHAKE_MESSAGE_BYTES = 32 * 1024;

/** Most certificate entries accepted in a Certificate message (raw keys use exactly one). */
export const MAX_TLS_CERTIFICATE_ENTRIES = 10;

/** Most packet-number ranges remembered per space for ACK frames (older ones are dropped). */
export const MAX_ACK_RANGES = 64;

/**
 * Disjoint ranges of received data buffered per connection, over all streams and CRYPTO
 * levels (each gap in a stream splits it). Honest peers leave gaps only through loss and
 * reordering; 1-byte frames with gaps would otherwise make a window cost millions of objects.
 * Beyond it the connection closes (FLOW_CONTROL_ERROR, or CRYPTO_BUFFER_EXCEEDED).
 */
export const MAX_RECV_FRAGMENTS = 4096;

/**
 * Disjoint ranges of CRYPTO data buffered per encryption level. Initial packets are not
 * authenticated, so this is what a spoofed datagram can make a new connection hold; a
 * handshake flight is a few packets. Beyond it: CRYPTO_BUFFER_EXCEEDED (RFC 9000 §7.5).
 */
export const MAX_CRYPTO_FRAGMENTS = 64;

/** Heap a stored chunk of received data costs beyond its bytes (node, view, slot), for the receive-memory budget. */
export const RECV_CHUNK_OVERHEAD = 192;

/**
 * Receive memory (stored bytes plus chunk overhead, CRYPTO and unread DATAGRAMs included) a
 * connection may hold beyond 1.5 × its connection receive window. Flow control bounds the
 * stored bytes by the window, and chunks of at least ~600 bytes on average (small pieces are
 * merged) bound their overhead by a third of it; this bounds the rest.
 */
export const RECV_MEMORY_SLACK = 2 * 1024 * 1024;

/** Largest amount of CRYPTO data buffered beyond the read offset per level (RFC 9000 §7.5 requires ≥ 4096). */
export const MAX_CRYPTO_BUFFER = 64 * 1024;

/** Most DATAGRAM frames queued for the application before the oldest is dropped. */
export const MAX_DATAGRAM_RECV_QUEUE = 256;
/** Most DATAGRAM frames queued for sending before new ones are refused. */
export const MAX_DATAGRAM_SEND_QUEUE = 256;

/** Connection IDs the peer may have us hold (our active_connection_id_limit). */
export const ACTIVE_CONNECTION_ID_LIMIT = 4;
/** Most NEW_CONNECTION_ID retirements we keep pending before treating it as abuse. */
export const MAX_PENDING_RETIRES = 64;

/** Undecryptable packets (keys not yet available) buffered per connection. */
export const MAX_EARLY_PACKETS = 8;

/** Concurrent connections an endpoint accepts before refusing new ones. */
export const MAX_CONNECTIONS = 4096;
/** Server-side connections still in the handshake, before new Initials are dropped. */
export const MAX_HANDSHAKING = 256;
/**
 * Handshakes in progress from which a server in the default `'auto'` Retry mode answers every
 * new Initial without a token with a Retry (RFC 9000 §8.1.2): spoofed Initials can hold at
 * most this many of the {@link MAX_HANDSHAKING} slots; clients that prove their address take the rest.
 */
export const RETRY_THRESHOLD = 64;
/**
 * Handshakes in progress from one source address (an IP, or one relayed peer), counted
 * separately for addresses proved (by a Retry token or a Handshake packet) and not: beyond
 * it, unproved Initials from that address get a Retry (or are dropped with Retry off) and
 * proved ones are dropped. A spoofer can only fill the unproved count of an address.
 */
export const MAX_HANDSHAKES_PER_SOURCE = 16;
/** Server-side connections (any state) from one source address (an IP, or one relayed peer). */
export const MAX_CONNECTIONS_PER_SOURCE = 256;

/** Stateless resets sent per second at most (RFC 9000 §10.3.3 asks for a limit). */
export const MAX_STATELESS_RESETS_PER_SECOND = 64;
/** Version Negotiation packets sent per second at most. */
export const MAX_VERSION_NEGOTIATIONS_PER_SECOND = 64;

/** Most direct addresses accepted in a peer's `sdnet_direct_addresses` parameter (and sent in ours). */
export const MAX_PEER_DIRECT_ADDRESSES = 16;
/** Most direct paths a client keeps trying while its connection runs over a relay. */
export const MAX_PATH_CANDIDATES = 16;
/**
 * Probes (a PATH_CHALLENGE and its resends) a client sends, at most in a burst, to addresses
 * a peer advertised that never answered; the budget refills one per ADVERTISED_PROBE_REFILL µs.
 */
export const MAX_ADVERTISED_PROBES = 16;
export const ADVERTISED_PROBE_REFILL = 60_000_000;
/**
 * PATH_RESPONSEs to a server's off-path probes (n0 NAT traversal) a client pads to 1200 bytes
 * beyond the 3× rule, at most in a burst (noq pads them all); the budget refills one per
 * PADDED_PROBE_RESPONSE_REFILL µs. A peer that spoofs its probes' source can aim at most this
 * many 1200-byte datagrams at a victim, then about 12 KB/s; past it, responses fall back to
 * three times what the address sent.
 */
export const MAX_PADDED_PROBE_RESPONSES = 32;
export const PADDED_PROBE_RESPONSE_REFILL = 100_000;

/**
 * Our initial_max_path_id (draft-ietf-quic-multipath-21 §2.1): path ids 0..7, as iroh. Each
 * abandoned path lets the peer use one more id (as noq), so at most this many + 1 paths are
 * live at once.
 */
export const MAX_PATH_ID_OFFERED = 7;

/**
 * Connection IDs we keep issued for each multipath path id above 0 that is in use: one to send
 * with and a spare for a migration (draft-ietf-quic-multipath-21 §3.2; fewer if the peer's
 * limit is lower).
 */
export const PATH_CIDS_PER_PATH = 2;

/**
 * Connection IDs we issue up front for each path id above 0 not used yet: one, as
 * multipath-21 §3.2 recommends ("at least one ... for each unused path ID"). The spare comes
 * when the path opens (`PATH_CIDS_PER_PATH`); each ID costs a random, a reset token and a
 * frame on both sides of every handshake, and most path ids are never used.
 */
export const PATH_CIDS_PER_UNUSED_PATH = 1;
