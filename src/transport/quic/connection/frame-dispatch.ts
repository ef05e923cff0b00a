/**
 * Frame dispatch (RFC 9000 §12.4, §19): decode every frame of a decrypted packet, check it
 * may appear in that packet type, and hand it to the connection's handler for its kind. Also
 * reports what the packet was as a whole: ack-eliciting (RFC 9002 §2) and probing-only
 * (RFC 9000 §9.1).
 *
 * @module
 */
import { TransportError, TransportErrorCode } from '../errors.ts';
import { ByteReader } from '../wire/reader.ts';
import { decodeFrame, frameAllowed, isAckEliciting, isProbing, type Frame } from '../wire/frames.ts';

type F<T extends Frame['type']> = Extract<Frame, { type: T }>;

/** What the connection does with each kind of frame (the packet's context is the connection's). */
export interface FrameHandlers {
  ack(f: F<'ack'>, wireType: number): void;
  crypto(f: F<'crypto'>, wireType: number): void;
  stream(f: F<'stream'>, wireType: number): void;
  resetStream(f: F<'reset_stream'>, wireType: number): void;
  stopSending(f: F<'stop_sending'>, wireType: number): void;
  maxData(f: F<'max_data'>): void;
  maxStreamData(f: F<'max_stream_data'>, wireType: number): void;
  maxStreams(f: F<'max_streams'>): void;
  /** DATA_BLOCKED, STREAM_DATA_BLOCKED, STREAMS_BLOCKED. */
  blocked(f: F<'data_blocked' | 'stream_data_blocked' | 'streams_blocked'>, wireType: number): void;
  newToken(f: F<'new_token'>, wireType: number): void;
  newConnectionId(f: F<'new_connection_id'>, wireType: number): void;
  retireConnectionId(f: F<'retire_connection_id'>, wireType: number): void;
  pathChallenge(f: F<'path_challenge'>): void;
  pathResponse(f: F<'path_response'>): void;
  connectionClose(f: F<'connection_close'>): void;
  handshakeDone(wireType: number): void;
  datagram(f: F<'datagram'>, wireType: number): void;
  observedAddress(f: F<'observed_address'>, wireType: number): void;
  /** PATH_ABANDON, PATH_STATUS_*, MAX_PATH_ID, PATHS_BLOCKED, PATH_CIDS_BLOCKED (multipath-21 §4). */
  pathControl(f: F<'path_abandon' | 'path_status' | 'max_path_id' | 'paths_blocked' | 'path_cids_blocked'>, wireType: number): void;
  /** ADD_ADDRESS, REACH_OUT, REMOVE_ADDRESS (n0 NAT traversal). */
  natTraversal(f: F<'add_address' | 'reach_out' | 'remove_address'>, wireType: number): void;
  /** The connection stopped processing (draining or closed) after a frame. */
  stopped(): boolean;
}

export interface PacketSummary {
  /** Some frame elicits an acknowledgment. */
  ackEliciting: boolean;
  /** Only probing frames (PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID, PADDING). */
  probingOnly: boolean;
}

/**
 * Decode and act on every frame of `payload`. Processing stops early when the connection
 * stops (a CONNECTION_CLOSE); `probingOnly` is then meaningless.
 *
 * @throws {TransportError} with the RFC's code for a malformed or misplaced frame (and
 *   whatever a handler throws)
 */
export function dispatchFrames(payload: Uint8Array, packetType: 'initial' | 'handshake' | '1rtt', h: FrameHandlers, out: PacketSummary): void {
  const r = new ByteReader(payload);
  out.ackEliciting = false;
  out.probingOnly = true;
  // RFC 9000 §12.4: a packet with no frames is a PROTOCOL_VIOLATION.
  if (payload.length === 0) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'packet without frames');
  while (!r.done) {
    const { frame, wireType } = decodeFrame(r);
    if (!frameAllowed(frame, wireType, packetType)) {
      throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, `frame ${frame.type} not allowed in ${packetType} packets`, wireType);
    }
    if (isAckEliciting(frame)) out.ackEliciting = true;
    if (!isProbing(frame)) out.probingOnly = false;
    dispatch(frame, wireType, h);
    if (h.stopped()) return;
  }
}

function dispatch(frame: Frame, wireType: number, h: FrameHandlers): void {
  switch (frame.type) {
    case 'padding':
    case 'ping':
      return;
    case 'ack':
      return h.ack(frame, wireType);
    case 'crypto':
      return h.crypto(frame, wireType);
    case 'stream':
      return h.stream(frame, wireType);
    case 'reset_stream':
      return h.resetStream(frame, wireType);
    case 'stop_sending':
      return h.stopSending(frame, wireType);
    case 'max_data':
      return h.maxData(frame);
    case 'max_stream_data':
      return h.maxStreamData(frame, wireType);
    case 'max_streams':
      return h.maxStreams(frame);
    case 'data_blocked':
    case 'stream_data_blocked':
    case 'streams_blocked':
      return h.blocked(frame, wireType);
    case 'new_token':
      return h.newToken(frame, wireType);
    case 'new_connection_id':
      return h.newConnectionId(frame, wireType);
    case 'retire_connection_id':
      return h.retireConnectionId(frame, wireType);
    case 'path_challenge':
      return h.pathChallenge(frame);
    case 'path_response':
      return h.pathResponse(frame);
    case 'connection_close':
      return h.connectionClose(frame);
    case 'handshake_done':
      return h.handshakeDone(wireType);
    case 'datagram':
      return h.datagram(frame, wireType);
    case 'observed_address':
      return h.observedAddress(frame, wireType);
    case 'path_abandon':
    case 'path_status':
    case 'max_path_id':
    case 'paths_blocked':
    case 'path_cids_blocked':
      return h.pathControl(frame, wireType);
    case 'add_address':
    case 'reach_out':
    case 'remove_address':
      return h.natTraversal(frame, wireType);
  }
}
