/**
 * Application error codes of the device layer, stable across releases: the codes a peer sees
 * in CONNECTION_CLOSE (application variant, RFC 9000 §19.19) when we close a connection, and
 * in RESET_STREAM / STOP_SENDING when we abandon one stream. Peers and tests match on them.
 *
 * @module
 */

/** Connection close codes. */
export const CloseCode = {
  /** Normal close (either side is done). */
  NORMAL: 0x00,
  /** Turned away before any protocol code ran (no handler, or the router is shutting down). */
  REFUSED: 0x02,
  /** The peer is not paired with us and the ALPN is not open to unpaired peers. */
  NOT_PAIRED: 0x10,
  /** Another connection to the same device on the same ALPN won the tie-break. */
  SUPERSEDED: 0x11,
  /** The service is shutting down. */
  SHUTDOWN: 0x12,
  /** The protocol handler failed on this connection. */
  HANDLER_FAILED: 0x13,
  /** The device was unpaired. */
  UNPAIRED: 0x14,
  /** The peer stopped answering health-check pings. */
  HEALTH_CHECK_FAILED: 0x15,
  /** Too many connections from this peer on this ALPN. */
  TOO_MANY_CONNECTIONS: 0x16,
} as const;

/** Stream reset / stop-sending codes. */
export const StreamCode = {
  /** A length prefix larger than the protocol allows (nothing was allocated for it). */
  FRAME_TOO_LARGE: 0x20,
  /** A frame that is not a valid message (bad JSON, missing or mistyped fields). */
  MALFORMED_MESSAGE: 0x21,
  /** A well-formed message of a type this protocol does not know. */
  UNKNOWN_MESSAGE: 0x22,
  /** The stream stayed silent longer than the protocol's idle timeout. */
  IDLE_TIMEOUT: 0x23,
  /** The handler failed while serving the stream. */
  INTERNAL: 0x24,
  /** The stream ended in the middle of a frame. */
  TRUNCATED: 0x25,
  /** The service is shutting down. */
  SHUTDOWN: 0x26,
} as const;

export type CloseCodeName = keyof typeof CloseCode;
export type StreamCodeName = keyof typeof StreamCode;

/** The name of a close code, for logs and error messages (`'0x1f'` for unknown ones). */
export function closeCodeName(code: number | undefined): string {
  for (const [name, value] of Object.entries(CloseCode)) if (value === code) return name;
  return code === undefined ? 'none' : `0x${code.toString(16)}`;
}

/** The name of a stream code. */
export function streamCodeName(code: number | undefined): string {
  for (const [name, value] of Object.entries(StreamCode)) if (value === code) return name;
  return code === undefined ? 'none' : `0x${code.toString(16)}`;
}
