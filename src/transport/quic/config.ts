/**
 * Connection settings and their defaults. Times are in milliseconds where the RFC uses
 * milliseconds on the wire (idle timeout, ack delay) and microseconds internally.
 *
 * @module
 */
import type { AddressDiscoveryMode } from './wire/transport-params.ts';
import type { CongestionAlgorithm } from './recovery/congestion.ts';

export interface ConnectionSettings {
  /** Congestion controller (iroh/noq use CUBIC). */
  readonly congestion: CongestionAlgorithm;
  /** RTT assumed before the first sample, µs (RFC 9002 §6.2.2: 333 ms). */
  readonly initialRtt: number;
  /** Our max_idle_timeout, ms (iroh: 30 s). 0 disables. */
  readonly maxIdleTimeout: number;
  /** Send a PING after this much silence, ms (iroh: 5 s). 0 disables. */
  readonly keepAliveInterval: number;
  /** Initial per-stream receive window, bytes (iroh: 1.25 MB). */
  readonly streamReceiveWindow: number;
  /** Largest per-stream receive window auto-tuning may reach. */
  readonly maxStreamReceiveWindow: number;
  /** Initial connection receive window, bytes. */
  readonly receiveWindow: number;
  /** Largest connection receive window auto-tuning may reach. */
  readonly maxReceiveWindow: number;
  /** Unacknowledged bytes a stream may buffer for sending before writes wait. */
  readonly streamSendBuffer: number;
  /** Streams the peer may have open at once. */
  readonly maxConcurrentBidiStreams: number;
  readonly maxConcurrentUniStreams: number;
  /** Largest UDP payload we send or accept (PMTUD probes up to this; iroh probes to 1452). */
  readonly maxUdpPayloadSize: number;
  /** Discover the path MTU above 1200 (DPLPMTUD, RFC 9000 §14.3). */
  readonly mtuDiscovery: boolean;
  /** Our max_datagram_frame_size; 0 disables DATAGRAM frames. */
  readonly maxDatagramFrameSize: number;
  /** Our max_ack_delay, ms. */
  readonly maxAckDelay: number;
  /** Our ack_delay_exponent. */
  readonly ackDelayExponent: number;
  /** Start a key update after this many packets under one key (AEAD limits, RFC 9001 §6.6). */
  readonly keyUpdateInterval: number;
  /** Handshake must complete within this many ms. */
  readonly handshakeTimeout: number;
  /**
   * Close with AEAD_LIMIT_REACHED once this many received packets failed authentication (RFC
   * 9001 §6.6); the AEAD's own integrity limit applies when lower (2^52 for AES-GCM, 2^36 for
   * ChaCha20-Poly1305).
   */
  readonly maxAuthenticationFailures: number;
  /**
   * QUIC address discovery (draft-ietf-quic-address-discovery): 0 = report the peer's address
   * to it, 1 = ask the peer to report ours, 2 = both; undefined = the parameter is not sent
   * (iroh's peer connections do not use it; its relays' QAD service does).
   */
  readonly addressDiscovery?: AddressDiscoveryMode;
  /**
   * Offer QUIC multipath (draft-ietf-quic-multipath-21) as iroh 1.0 does. sdnet allows path 0
   * only for now (`initial_max_path_id` 0): acknowledgments become PATH_ACK and the peer's
   * multipath frames for path 0 are understood.
   */
  readonly multipath: boolean;
}

export const DEFAULT_CONNECTION_SETTINGS: ConnectionSettings = {
  congestion: 'cubic',
  initialRtt: 333_000,
  maxIdleTimeout: 30_000,
  keepAliveInterval: 5_000,
  streamReceiveWindow: 1_250_000,
  maxStreamReceiveWindow: 16 * 1024 * 1024,
  receiveWindow: 8 * 1024 * 1024,
  maxReceiveWindow: 64 * 1024 * 1024,
  streamSendBuffer: 2 * 1024 * 1024,
  maxConcurrentBidiStreams: 100,
  maxConcurrentUniStreams: 100,
  maxUdpPayloadSize: 1452,
  mtuDiscovery: true,
  maxDatagramFrameSize: 65535,
  maxAckDelay: 25,
  ackDelayExponent: 3,
  keyUpdateInterval: 1 << 22,
  handshakeTimeout: 10_000,
  maxAuthenticationFailures: 2 ** 52,
  multipath: true,
};
