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
