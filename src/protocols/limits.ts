/**
 * Limits of the device-layer protocols: every size and count a peer controls is bounded
 * here before anything is allocated for it.
 *
 * @module
 */

/** Bytes of the length prefix of every framed message (u32, big-endian). */
export const FRAME_HEADER_BYTES = 4;
/** The largest frame any protocol may declare (a protocol's own limit is usually lower). */
export const MAX_FRAME_BYTES_CEILING = 64 * 1024 * 1024;

/** Messaging (`sdnet/messaging/1`): largest message (bytes of JSON). */
export const MESSAGING_MAX_MESSAGE_BYTES = 1024 * 1024;
/** Messaging: streams of one connection served at once (more wait in QUIC's stream limit). */
export const MESSAGING_MAX_CONCURRENT_STREAMS = 64;
/** Messaging: a stream silent this long is reset (ms). */
export const MESSAGING_STREAM_IDLE_TIMEOUT_MS = 30_000;
/** Messaging: frames served on one stream before it is closed (a client uses one per exchange). */
export const MESSAGING_MAX_FRAMES_PER_STREAM = 1024;
/** Messaging: default timeout of `request()` and of waiting for an Ack (ms). */
export const MESSAGING_DEFAULT_TIMEOUT_MS = 30_000;
/** Messaging: length of a request/message id string. */
export const MESSAGING_MAX_ID_LENGTH = 64;
/** Messaging: length of a method name or content type. */
export const MESSAGING_MAX_NAME_LENGTH = 128;
/** Messaging: length of an error or goodbye reason. */
export const MESSAGING_MAX_REASON_LENGTH = 1024;

/** Pairing (`sdnet/pair/1`): largest message (bytes of JSON; the biggest is a sealed DeviceInfo or an introduction). */
export const PAIRING_MAX_MESSAGE_BYTES = 16 * 1024;
/** Pairing: streams of one connection served at once. */
export const PAIRING_MAX_CONCURRENT_STREAMS = 2;
/** Pairing: a stream silent this long is reset (ms). */
export const PAIRING_STREAM_IDLE_TIMEOUT_MS = 10_000;
/** Pairing: one exchange (Start to Done) may take this long, on either side (ms). */
export const PAIRING_ATTEMPT_TIMEOUT_MS = 10_000;
/** The initiator waits this long (ms) for Done to be written and finished before it reports `paired` anyway. */
export const PAIRING_DONE_WRITE_MS = 3_000;
/** Pairing: a code is valid this long (ms). */
export const PAIRING_CODE_TTL_MS = 5 * 60_000;
/**
 * Pairing: a rendezvous registration that failed (unreachable, refused by a per-address
 * rate limit, a relay error) is tried again after this long (ms), doubling up to the maximum,
 * while the code is shown: typed words find the initiator only there.
 */
export const PAIRING_REGISTER_RETRY_MIN_MS = 250;
export const PAIRING_REGISTER_RETRY_MAX_MS = 5_000;
/** Pairing: wrong tries that burn a code. */
export const PAIRING_MAX_FAILED_ATTEMPTS = 3;
/** Pairing: codes one device shows at once. */
export const PAIRING_MAX_ACTIVE_INVITES = 16;
/** Pairing: exchanges a pairing connection may start before it is closed. */
export const PAIRING_MAX_STREAMS_PER_CONNECTION = 4;
/** Pairing: connections from unpaired peers served at once (more are closed with TOO_MANY_CONNECTIONS). */
export const PAIRING_MAX_UNPAIRED_CONNECTIONS = 32;
/** Pairing: a connection of an unpaired peer that starts no exchange in this long is closed (ms). */
export const PAIRING_CONNECTION_IDLE_MS = 10_000;
/** Pairing: Start messages accepted per second across all peers (token bucket rate; burst twice that). */
export const PAIRING_STARTS_PER_SECOND = 20;
/** Pairing: a QR payload or typed code at most this long (characters). */
export const PAIRING_MAX_QR_CHARS = 4096;
/** Pairing: direct addresses in a QR payload or a rendezvous record. */
export const PAIRING_MAX_QR_ADDRESSES = 8;
/** Pairing: finished sessions remembered for `status` (no secrets). */
export const PAIRING_MAX_FINISHED_SESSIONS = 32;
/** Vouching: an introduction is valid this long after it was signed (ms). */
export const VOUCH_MAX_AGE_MS = 5 * 60_000;
/** Vouching: how long the target waits for the user to confirm an introduction (ms). */
export const VOUCH_CONFIRM_TIMEOUT_MS = 60_000;
/** Vouching: introductions waiting (for confirmation or for the vouchee) at once. */
export const VOUCH_MAX_PENDING = 64;
