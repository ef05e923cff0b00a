/**
 * QUIC frames (RFC 9000 §19) and DATAGRAM (RFC 9221 §4): decoding into plain objects and
 * encoding into a {@link FixedWriter}. Decoding never throws anything but
 * {@link TransportError} with FRAME_ENCODING_ERROR (malformed) and never reads past the
 * payload; counts claimed by the peer are checked against the bytes left before arrays are
 * built.
 *
 * @module
 */
import { ByteReader } from './reader.ts';
import type { FixedWriter } from './fixed-writer.ts';
import { VARINT_MAX, varintLength } from './varint.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { DecodeError } from '../../../util/errors.ts';

export const FrameType = {
  PADDING: 0x00,
  PING: 0x01,
  ACK: 0x02,
  ACK_ECN: 0x03,
  RESET_STREAM: 0x04,
  STOP_SENDING: 0x05,
  CRYPTO: 0x06,
  NEW_TOKEN: 0x07,
  STREAM: 0x08, // 0x08..0x0f
  MAX_DATA: 0x10,
  MAX_STREAM_DATA: 0x11,
  MAX_STREAMS_BIDI: 0x12,
  MAX_STREAMS_UNI: 0x13,
  DATA_BLOCKED: 0x14,
  STREAM_DATA_BLOCKED: 0x15,
  STREAMS_BLOCKED_BIDI: 0x16,
  STREAMS_BLOCKED_UNI: 0x17,
  NEW_CONNECTION_ID: 0x18,
  RETIRE_CONNECTION_ID: 0x19,
  PATH_CHALLENGE: 0x1a,
  PATH_RESPONSE: 0x1b,
  CONNECTION_CLOSE: 0x1c,
  CONNECTION_CLOSE_APP: 0x1d,
  HANDSHAKE_DONE: 0x1e,
  DATAGRAM: 0x30,
  DATAGRAM_LEN: 0x31,
  /** draft-ietf-quic-address-discovery §3: OBSERVED_ADDRESS with an IPv4 (0x9f81a6) or IPv6 (0x9f81a7) address. */
  OBSERVED_ADDRESS_V4: 0x9f81a6,
  OBSERVED_ADDRESS_V6: 0x9f81a7,
  /** draft-ietf-quic-multipath-21 §4 (final code points, holepunch.md §1.1). */
  PATH_ACK: 0x3e,
  PATH_ACK_ECN: 0x3f,
  PATH_ABANDON: 0x3e75,
  PATH_STATUS_BACKUP: 0x3e76,
  PATH_STATUS_AVAILABLE: 0x3e77,
  PATH_NEW_CONNECTION_ID: 0x3e78,
  PATH_RETIRE_CONNECTION_ID: 0x3e79,
  MAX_PATH_ID: 0x3e7a,
  PATHS_BLOCKED: 0x3e7b,
  PATH_CIDS_BLOCKED: 0x3e7c,
  /** n0 NAT traversal ("QNT", holepunch.md §2.1): ADD_ADDRESS and REMOVE_ADDRESS from the server, REACH_OUT from the client. */
  ADD_ADDRESS_V4: 0x3d7f90,
  ADD_ADDRESS_V6: 0x3d7f91,
  REACH_OUT_V4: 0x3d7f92,
  REACH_OUT_V6: 0x3d7f93,
  REMOVE_ADDRESS: 0x3d7f94,
} as const;

/** draft-ietf-quic-multipath-21 §2.1: path ids are at most 2^32 − 1 (the nonce holds 32 bits of it). */
export const MAX_PATH_ID_VALUE = 0xffffffff;

/** An ACK range as inclusive packet numbers, highest first as on the wire. */
export interface AckRange {
  start: number;
  end: number;
}

export type Frame =
  | { type: 'padding'; length: number }
  | { type: 'ping' }
  /** ACK, or PATH_ACK when `pathId` is present (draft-ietf-quic-multipath-21 §4.1). */
  | { type: 'ack'; largest: number; delay: number; ranges: AckRange[]; ecn?: { ect0: number; ect1: number; ce: number }; pathId?: number }
  | { type: 'reset_stream'; id: number; code: number; finalSize: number }
  | { type: 'stop_sending'; id: number; code: number }
  | { type: 'crypto'; offset: number; data: Uint8Array }
  | { type: 'new_token'; token: Uint8Array }
  | { type: 'stream'; id: number; offset: number; data: Uint8Array; fin: boolean }
  | { type: 'max_data'; max: number }
  | { type: 'max_stream_data'; id: number; max: number }
  | { type: 'max_streams'; bidi: boolean; max: number }
  | { type: 'data_blocked'; limit: number }
  | { type: 'stream_data_blocked'; id: number; limit: number }
  | { type: 'streams_blocked'; bidi: boolean; limit: number }
  /** NEW_CONNECTION_ID, or PATH_NEW_CONNECTION_ID when `pathId` is present (multipath-21 §4.5). */
  | { type: 'new_connection_id'; seq: number; retirePriorTo: number; cid: Uint8Array; resetToken: Uint8Array; pathId?: number }
  /** RETIRE_CONNECTION_ID, or PATH_RETIRE_CONNECTION_ID when `pathId` is present (multipath-21 §4.6). */
  | { type: 'retire_connection_id'; seq: number; pathId?: number }
  | { type: 'path_challenge'; data: Uint8Array }
  | { type: 'path_response'; data: Uint8Array }
  | { type: 'connection_close'; app: boolean; code: number; frameType: number; reason: Uint8Array }
  | { type: 'handshake_done' }
  | { type: 'datagram'; data: Uint8Array }
  /** The address the sender sees our packets come from on this path; `ip` is 4 or 16 bytes. */
  | { type: 'observed_address'; seq: number; ip: Uint8Array; port: number }
  /** multipath-21 §4.2. */
  | { type: 'path_abandon'; pathId: number; code: number }
  /** PATH_STATUS_AVAILABLE (`available`) or PATH_STATUS_BACKUP (multipath-21 §4.3). */
  | { type: 'path_status'; pathId: number; seq: number; available: boolean }
  /** multipath-21 §4.7. */
  | { type: 'max_path_id'; max: number }
  /** multipath-21 §4.8. */
  | { type: 'paths_blocked'; max: number }
  | { type: 'path_cids_blocked'; pathId: number; nextSeq: number }
  /** QNT ADD_ADDRESS (server → client); `ip` is 4 or 16 bytes. */
  | { type: 'add_address'; seq: number; ip: Uint8Array; port: number }
  /** QNT REACH_OUT (client → server): probe this address in `round`. */
  | { type: 'reach_out'; round: number; ip: Uint8Array; port: number }
  /** QNT REMOVE_ADDRESS (server → client). */
  | { type: 'remove_address'; seq: number };

/** The frames of the multipath extension: each is a PROTOCOL_VIOLATION unless multipath was negotiated (multipath-21 §2). */
export function isMultipathFrame(wireType: number): boolean {
  return wireType === FrameType.PATH_ACK || wireType === FrameType.PATH_ACK_ECN || (wireType >= FrameType.PATH_ABANDON && wireType <= FrameType.PATH_CIDS_BLOCKED);
}

/** The n0 NAT-traversal frames (holepunch.md §2.1). */
export function isNatTraversalFrame(wireType: number): boolean {
  return wireType >= FrameType.ADD_ADDRESS_V4 && wireType <= FrameType.REMOVE_ADDRESS;
}

/** The largest value a 62-bit varint field can carry that we hold exactly. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** RFC 9000 §4.6: stream counts are at most 2^60. */
const MAX_STREAM_COUNT = 2n ** 60n;

function encodingError(reason: string, frameType: number): TransportError {
  return new TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, reason, frameType);
}

/**
 * Decode the frame at the reader's position. Returns the frame and its wire type.
 *
 * @throws {TransportError} FRAME_ENCODING_ERROR on malformed input or an unknown type
 */
export function decodeFrame(r: ByteReader): { frame: Frame; wireType: number } {
  const start = r.pos;
  let wireType = -1;
  try {
    wireType = r.varint('frame type');
    // RFC 9000 §12.4: the frame type uses the shortest encoding; longer is a PROTOCOL_VIOLATION (MAY).
    if (r.pos - start !== varintLength(wireType)) {
      throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'frame type not minimally encoded', wireType);
    }
    return { frame: decodeBody(r, wireType), wireType };
  } catch (err) {
    if (err instanceof DecodeError) throw encodingError(err.message, Math.max(wireType, 0));
    throw err;
  }
}

function decodeBody(r: ByteReader, t: number): Frame {
  switch (t) {
    case FrameType.PADDING: {
      // Consume the whole run of padding in one frame.
      let n = 1;
      while (!r.done && r.buf[r.pos] === 0) {
        r.pos++;
        n++;
      }
      return { type: 'padding', length: n };
    }
    case FrameType.PING:
      return { type: 'ping' };
    case FrameType.ACK:
    case FrameType.ACK_ECN:
    case FrameType.PATH_ACK:
    case FrameType.PATH_ACK_ECN: {
      const pathId = t === FrameType.PATH_ACK || t === FrameType.PATH_ACK_ECN ? r.varintSat('path id') : undefined;
      // Above 2^53 − 1, packet numbers saturate: no such packet was sent, so the connection
      // reports PROTOCOL_VIOLATION (RFC 9000 §13.1) rather than an encoding error.
      const largest = r.varintSat('ACK largest');
      const delay = r.varintSat('ACK delay');
      const count = r.varintSat('ACK range count');
      // Each further range takes at least 2 bytes: bound the count before building the array.
      if (count > r.remaining / 2) throw encodingError('ACK range count exceeds the frame', t);
      const first = r.varintSat('ACK first range');
      if (first > largest) throw encodingError('ACK first range below packet number 0', t);
      const ranges: AckRange[] = [{ start: largest - first, end: largest }];
      let smallest = largest - first;
      for (let i = 0; i < count; i++) {
        const gap = r.varintSat('ACK gap');
        const len = r.varintSat('ACK range length');
        // RFC 9000 §19.3.1: largest of the next range = smallest − gap − 2.
        const end = smallest - gap - 2;
        const start = end - len;
        if (end < 0 || start < 0) throw encodingError('ACK range below packet number 0', t);
        ranges.push({ start, end });
        smallest = start;
      }
      const ack: Frame = { type: 'ack', largest, delay, ranges };
      if (t === FrameType.ACK_ECN || t === FrameType.PATH_ACK_ECN) {
        const ect0 = r.varintSat('ECT0');
        const ect1 = r.varintSat('ECT1');
        const ce = r.varintSat('CE');
        ack.ecn = { ect0, ect1, ce };
      }
      if (pathId !== undefined) ack.pathId = pathId;
      return ack;
    }
    case FrameType.RESET_STREAM:
      return { type: 'reset_stream', id: readStreamId(r), code: r.varintSat('error code'), finalSize: r.varintSat('final size') };
    case FrameType.STOP_SENDING:
      return { type: 'stop_sending', id: readStreamId(r), code: r.varintSat('error code') };
    case FrameType.CRYPTO: {
      const offset = r.varintBig('CRYPTO offset');
      const len = r.varint('CRYPTO length');
      const data = r.bytes(len, 'CRYPTO data');
      // RFC 9000 §19.6: offset + length beyond 2^62 − 1 → FRAME_ENCODING_ERROR.
      if (offset + BigInt(len) > VARINT_MAX) throw encodingError('CRYPTO data beyond the maximum offset', t);
      return { type: 'crypto', offset: saturate(offset), data };
    }
    case FrameType.NEW_TOKEN: {
      const len = r.varint('token length');
      // RFC 9000 §19.7: an empty token → FRAME_ENCODING_ERROR.
      if (len === 0) throw encodingError('empty NEW_TOKEN', t);
      return { type: 'new_token', token: r.bytes(len, 'token') };
    }
    case FrameType.MAX_DATA:
      return { type: 'max_data', max: r.varintSat('credit') };
    case FrameType.MAX_STREAM_DATA:
      return { type: 'max_stream_data', id: readStreamId(r), max: r.varintSat('credit') };
    case FrameType.MAX_STREAMS_BIDI:
    case FrameType.MAX_STREAMS_UNI: {
      const max = r.varintBig('MAX_STREAMS');
      // RFC 9000 §19.11: more than 2^60 streams → FRAME_ENCODING_ERROR.
      if (max > MAX_STREAM_COUNT) throw encodingError('MAX_STREAMS above 2^60', t);
      return { type: 'max_streams', bidi: t === FrameType.MAX_STREAMS_BIDI, max: Number(max) };
    }
    case FrameType.DATA_BLOCKED:
      return { type: 'data_blocked', limit: r.varintSat('credit') };
    case FrameType.STREAM_DATA_BLOCKED:
      return { type: 'stream_data_blocked', id: readStreamId(r), limit: r.varintSat('credit') };
    case FrameType.STREAMS_BLOCKED_BIDI:
    case FrameType.STREAMS_BLOCKED_UNI: {
      const limit = r.varintBig('STREAMS_BLOCKED');
      // RFC 9000 §19.14: more than 2^60 → STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR.
      if (limit > MAX_STREAM_COUNT) throw encodingError('STREAMS_BLOCKED above 2^60', t);
      return { type: 'streams_blocked', bidi: t === FrameType.STREAMS_BLOCKED_BIDI, limit: Number(limit) };
    }
    case FrameType.NEW_CONNECTION_ID:
    case FrameType.PATH_NEW_CONNECTION_ID: {
      const pathId = t === FrameType.PATH_NEW_CONNECTION_ID ? r.varintSat('path id') : undefined;
      const seq = r.varintSat('sequence number');
      const retirePriorTo = r.varintSat('retire prior to');
      const len = r.u8('connection id length');
      // RFC 9000 §19.15: length 1..20, else FRAME_ENCODING_ERROR; retire_prior_to ≤ seq likewise.
      if (len < 1 || len > 20) throw encodingError('NEW_CONNECTION_ID length outside 1..20', t);
      if (retirePriorTo > seq) throw encodingError('NEW_CONNECTION_ID retire_prior_to above its sequence number', t);
      const f: Frame = { type: 'new_connection_id', seq, retirePriorTo, cid: r.bytes(len).slice(), resetToken: r.bytes(16, 'reset token').slice() };
      if (pathId !== undefined) f.pathId = pathId;
      return f;
    }
    case FrameType.RETIRE_CONNECTION_ID:
      return { type: 'retire_connection_id', seq: r.varintSat('sequence number') };
    case FrameType.PATH_RETIRE_CONNECTION_ID: {
      const pathId = r.varintSat('path id');
      return { type: 'retire_connection_id', pathId, seq: r.varintSat('sequence number') };
    }
    case FrameType.PATH_ABANDON: {
      const pathId = r.varintSat('path id');
      return { type: 'path_abandon', pathId, code: r.varintSat('error code') };
    }
    case FrameType.PATH_STATUS_BACKUP:
    case FrameType.PATH_STATUS_AVAILABLE: {
      const pathId = r.varintSat('path id');
      return { type: 'path_status', pathId, seq: r.varintSat('path status sequence number'), available: t === FrameType.PATH_STATUS_AVAILABLE };
    }
    case FrameType.MAX_PATH_ID:
      return { type: 'max_path_id', max: r.varintSat('maximum path id') };
    case FrameType.PATHS_BLOCKED:
      return { type: 'paths_blocked', max: r.varintSat('maximum path id') };
    case FrameType.PATH_CIDS_BLOCKED: {
      const pathId = r.varintSat('path id');
      return { type: 'path_cids_blocked', pathId, nextSeq: r.varintSat('next sequence number') };
    }
    case FrameType.ADD_ADDRESS_V4:
    case FrameType.ADD_ADDRESS_V6: {
      const seq = r.varintSat('sequence number');
      const ip = r.bytes(t === FrameType.ADD_ADDRESS_V4 ? 4 : 16, 'address').slice();
      return { type: 'add_address', seq, ip, port: r.u16() };
    }
    case FrameType.REACH_OUT_V4:
    case FrameType.REACH_OUT_V6: {
      const round = r.varintSat('round');
      const ip = r.bytes(t === FrameType.REACH_OUT_V4 ? 4 : 16, 'address').slice();
      return { type: 'reach_out', round, ip, port: r.u16() };
    }
    case FrameType.REMOVE_ADDRESS:
      return { type: 'remove_address', seq: r.varintSat('sequence number') };
    case FrameType.PATH_CHALLENGE:
      return { type: 'path_challenge', data: r.bytes(8, 'challenge').slice() };
    case FrameType.PATH_RESPONSE:
      return { type: 'path_response', data: r.bytes(8, 'response').slice() };
    case FrameType.CONNECTION_CLOSE:
    case FrameType.CONNECTION_CLOSE_APP: {
      const app = t === FrameType.CONNECTION_CLOSE_APP;
      const code = r.varintSat('error code');
      const frameType = app ? 0 : r.varintSat('frame type');
      const len = r.varint('reason length');
      return { type: 'connection_close', app, code, frameType, reason: r.bytes(len, 'reason') };
    }
    case FrameType.HANDSHAKE_DONE:
      return { type: 'handshake_done' };
    case FrameType.DATAGRAM:
      return { type: 'datagram', data: r.bytes(r.remaining) };
    case FrameType.DATAGRAM_LEN:
      return { type: 'datagram', data: r.bytes(r.varint('datagram length'), 'datagram') };
    case FrameType.OBSERVED_ADDRESS_V4:
    case FrameType.OBSERVED_ADDRESS_V6: {
      const seq = r.varintSat('sequence number');
      const ip = r.bytes(t === FrameType.OBSERVED_ADDRESS_V4 ? 4 : 16, 'address').slice();
      return { type: 'observed_address', seq, ip, port: r.u16() };
    }
    default: {
      if (t >= 0x08 && t <= 0x0f) {
        const id = readStreamId(r);
        const offset = t & 0x04 ? r.varintBig('STREAM offset') : 0n;
        const data = t & 0x02 ? r.bytes(r.varint('STREAM length'), 'STREAM data') : r.bytes(r.remaining);
        // RFC 9000 §19.8: offset + length beyond 2^62 − 1 → FRAME_ENCODING_ERROR. Offsets above
        // 2^53 − 1 saturate and fail flow control (FLOW_CONTROL_ERROR) instead.
        if (offset + BigInt(data.length) > VARINT_MAX) throw encodingError('STREAM data beyond the maximum offset', t);
        return { type: 'stream', id, offset: saturate(offset), data, fin: (t & 0x01) !== 0 };
      }
      // RFC 9000 §12.4: an unknown frame type → FRAME_ENCODING_ERROR.
      throw encodingError(`unknown frame type 0x${t.toString(16)}`, t);
    }
  }
}

/** A stream id; ids beyond 2^53 − 1 keep their type bits and become an index beyond any limit. */
function readStreamId(r: ByteReader): number {
  const v = r.varintSat('stream id');
  if (v !== MAX_SAFE) return v;
  // RFC 9000 §2.1: the two low bits are the type; the last byte of the varint holds them.
  return MAX_SAFE - 3 + (r.buf[r.pos - 1]! & 0x03);
}

const saturate = (v: bigint): number => (v > BigInt(MAX_SAFE) ? MAX_SAFE : Number(v));

// ---------------------------------------------------------------- encoding

/** Bytes an ACK frame for `ranges` (highest first) takes; a PATH_ACK when `pathId` is given. */
export function ackFrameSize(ranges: readonly AckRange[], delay: number, pathId?: number): number {
  const first = ranges[0]!;
  let n = (pathId === undefined ? 1 : 1 + varintLength(pathId)) + varintLength(first.end) + varintLength(delay) + varintLength(ranges.length - 1) + varintLength(first.end - first.start);
  let smallest = first.start;
  for (let i = 1; i < ranges.length; i++) {
    const r = ranges[i]!;
    n += varintLength(smallest - r.end - 2) + varintLength(r.end - r.start);
    smallest = r.start;
  }
  return n;
}

/** Write an ACK frame (a PATH_ACK when `pathId` is given); `ranges` are disjoint, highest first. */
export function writeAck(w: FixedWriter, ranges: readonly AckRange[], delay: number, pathId?: number): void {
  const first = ranges[0]!;
  if (pathId === undefined) w.u8(FrameType.ACK);
  else w.u8(FrameType.PATH_ACK).varint(pathId);
  w.varint(first.end).varint(delay).varint(ranges.length - 1).varint(first.end - first.start);
  let smallest = first.start;
  for (let i = 1; i < ranges.length; i++) {
    const r = ranges[i]!;
    w.varint(smallest - r.end - 2).varint(r.end - r.start);
    smallest = r.start;
  }
}

/** Header bytes of a STREAM frame with explicit offset and length. */
export function streamFrameOverhead(id: number, offset: number, length: number): number {
  return 1 + varintLength(id) + (offset > 0 ? varintLength(offset) : 0) + varintLength(length);
}

export function writeStreamHeader(w: FixedWriter, id: number, offset: number, length: number, fin: boolean): void {
  w.u8(FrameType.STREAM | (offset > 0 ? 0x04 : 0) | 0x02 | (fin ? 0x01 : 0)).varint(id);
  if (offset > 0) w.varint(offset);
  w.varint(length);
}

export function cryptoFrameOverhead(offset: number, length: number): number {
  return 1 + varintLength(offset) + varintLength(length);
}

export function writeCryptoHeader(w: FixedWriter, offset: number, length: number): void {
  w.u8(FrameType.CRYPTO).varint(offset).varint(length);
}

/** Encode any non-ACK, non-STREAM, non-CRYPTO frame (control frames). */
export function writeFrame(w: FixedWriter, f: Exclude<Frame, { type: 'ack' | 'stream' | 'crypto' | 'padding' }>): void {
  switch (f.type) {
    case 'ping':
      w.u8(FrameType.PING);
      return;
    case 'reset_stream':
      w.u8(FrameType.RESET_STREAM).varint(f.id).varint(f.code).varint(f.finalSize);
      return;
    case 'stop_sending':
      w.u8(FrameType.STOP_SENDING).varint(f.id).varint(f.code);
      return;
    case 'new_token':
      w.u8(FrameType.NEW_TOKEN).varint(f.token.length).bytes(f.token);
      return;
    case 'max_data':
      w.u8(FrameType.MAX_DATA).varint(f.max);
      return;
    case 'max_stream_data':
      w.u8(FrameType.MAX_STREAM_DATA).varint(f.id).varint(f.max);
      return;
    case 'max_streams':
      w.u8(f.bidi ? FrameType.MAX_STREAMS_BIDI : FrameType.MAX_STREAMS_UNI).varint(f.max);
      return;
    case 'data_blocked':
      w.u8(FrameType.DATA_BLOCKED).varint(f.limit);
      return;
    case 'stream_data_blocked':
      w.u8(FrameType.STREAM_DATA_BLOCKED).varint(f.id).varint(f.limit);
      return;
    case 'streams_blocked':
      w.u8(f.bidi ? FrameType.STREAMS_BLOCKED_BIDI : FrameType.STREAMS_BLOCKED_UNI).varint(f.limit);
      return;
    case 'new_connection_id':
      if (f.pathId === undefined) w.u8(FrameType.NEW_CONNECTION_ID);
      else w.varint(FrameType.PATH_NEW_CONNECTION_ID).varint(f.pathId);
      w.varint(f.seq).varint(f.retirePriorTo).u8(f.cid.length).bytes(f.cid).bytes(f.resetToken);
      return;
    case 'retire_connection_id':
      if (f.pathId === undefined) w.u8(FrameType.RETIRE_CONNECTION_ID);
      else w.varint(FrameType.PATH_RETIRE_CONNECTION_ID).varint(f.pathId);
      w.varint(f.seq);
      return;
    case 'path_challenge':
      w.u8(FrameType.PATH_CHALLENGE).bytes(f.data);
      return;
    case 'path_response':
      w.u8(FrameType.PATH_RESPONSE).bytes(f.data);
      return;
    case 'connection_close':
      if (f.app) w.u8(FrameType.CONNECTION_CLOSE_APP).varint(f.code);
      else w.u8(FrameType.CONNECTION_CLOSE).varint(f.code).varint(f.frameType);
      w.varint(f.reason.length).bytes(f.reason);
      return;
    case 'handshake_done':
      w.u8(FrameType.HANDSHAKE_DONE);
      return;
    case 'datagram':
      w.u8(FrameType.DATAGRAM_LEN).varint(f.data.length).bytes(f.data);
      return;
    case 'observed_address':
      w.varint(f.ip.length === 4 ? FrameType.OBSERVED_ADDRESS_V4 : FrameType.OBSERVED_ADDRESS_V6).varint(f.seq).bytes(f.ip).u16(f.port);
      return;
    case 'path_abandon':
      w.varint(FrameType.PATH_ABANDON).varint(f.pathId).varint(f.code);
      return;
    case 'path_status':
      w.varint(f.available ? FrameType.PATH_STATUS_AVAILABLE : FrameType.PATH_STATUS_BACKUP).varint(f.pathId).varint(f.seq);
      return;
    case 'max_path_id':
      w.varint(FrameType.MAX_PATH_ID).varint(f.max);
      return;
    case 'paths_blocked':
      w.varint(FrameType.PATHS_BLOCKED).varint(f.max);
      return;
    case 'path_cids_blocked':
      w.varint(FrameType.PATH_CIDS_BLOCKED).varint(f.pathId).varint(f.nextSeq);
      return;
    case 'add_address':
      w.varint(f.ip.length === 4 ? FrameType.ADD_ADDRESS_V4 : FrameType.ADD_ADDRESS_V6).varint(f.seq).bytes(f.ip).u16(f.port);
      return;
    case 'reach_out':
      w.varint(f.ip.length === 4 ? FrameType.REACH_OUT_V4 : FrameType.REACH_OUT_V6).varint(f.round).bytes(f.ip).u16(f.port);
      return;
    case 'remove_address':
      w.varint(FrameType.REMOVE_ADDRESS).varint(f.seq);
      return;
  }
}

/** Encoded size of a frame written by {@link writeFrame}. */
export function frameSize(f: Exclude<Frame, { type: 'ack' | 'stream' | 'crypto' | 'padding' }>): number {
  switch (f.type) {
    case 'ping':
    case 'handshake_done':
      return 1;
    case 'reset_stream':
      return 1 + varintLength(f.id) + varintLength(f.code) + varintLength(f.finalSize);
    case 'stop_sending':
      return 1 + varintLength(f.id) + varintLength(f.code);
    case 'new_token':
      return 1 + varintLength(f.token.length) + f.token.length;
    case 'max_data':
      return 1 + varintLength(f.max);
    case 'max_stream_data':
      return 1 + varintLength(f.id) + varintLength(f.max);
    case 'max_streams':
      return 1 + varintLength(f.max);
    case 'data_blocked':
      return 1 + varintLength(f.limit);
    case 'stream_data_blocked':
      return 1 + varintLength(f.id) + varintLength(f.limit);
    case 'streams_blocked':
      return 1 + varintLength(f.limit);
    case 'new_connection_id':
      return (f.pathId === undefined ? 1 : 2 + varintLength(f.pathId)) + varintLength(f.seq) + varintLength(f.retirePriorTo) + 1 + f.cid.length + 16;
    case 'retire_connection_id':
      return (f.pathId === undefined ? 1 : 2 + varintLength(f.pathId)) + varintLength(f.seq);
    case 'path_challenge':
    case 'path_response':
      return 9;
    case 'connection_close':
      return 1 + varintLength(f.code) + (f.app ? 0 : varintLength(f.frameType)) + varintLength(f.reason.length) + f.reason.length;
    case 'datagram':
      return 1 + varintLength(f.data.length) + f.data.length;
    case 'observed_address':
      return 4 + varintLength(f.seq) + f.ip.length + 2;
    case 'path_abandon':
      return 2 + varintLength(f.pathId) + varintLength(f.code);
    case 'path_status':
      return 2 + varintLength(f.pathId) + varintLength(f.seq);
    case 'max_path_id':
    case 'paths_blocked':
      return 2 + varintLength(f.max);
    case 'path_cids_blocked':
      return 2 + varintLength(f.pathId) + varintLength(f.nextSeq);
    case 'add_address':
      return 4 + varintLength(f.seq) + f.ip.length + 2;
    case 'reach_out':
      return 4 + varintLength(f.round) + f.ip.length + 2;
    case 'remove_address':
      return 4 + varintLength(f.seq);
  }
}

/** RFC 9000 §12.4 Table 3: may this frame appear in a packet of this type? */
export function frameAllowed(frame: Frame, wireType: number, packet: 'initial' | 'handshake' | '0rtt' | '1rtt'): boolean {
  if (packet === '1rtt') return true;
  // multipath-21 §4: its frames only in 1-RTT packets (0-RTT → PROTOCOL_VIOLATION); QNT frames likewise.
  if (isMultipathFrame(wireType) || isNatTraversalFrame(wireType)) return false;
  if (packet === 'initial' || packet === 'handshake') {
    return (
      frame.type === 'padding' ||
      frame.type === 'ping' ||
      frame.type === 'ack' ||
      frame.type === 'crypto' ||
      (frame.type === 'connection_close' && wireType === FrameType.CONNECTION_CLOSE)
    );
  }
  // 0-RTT: everything except ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN, PATH_RESPONSE, RETIRE_CONNECTION_ID.
  return !['ack', 'crypto', 'handshake_done', 'new_token', 'path_response', 'retire_connection_id'].includes(frame.type);
}

/** Frames that do not make a packet ack-eliciting (RFC 9002 §2). */
export function isAckEliciting(frame: Frame): boolean {
  return frame.type !== 'ack' && frame.type !== 'padding' && frame.type !== 'connection_close';
}

/** Frames allowed in a path-probing packet (RFC 9000 §9.1). */
export function isProbing(frame: Frame): boolean {
  // draft-ietf-quic-address-discovery §3: OBSERVED_ADDRESS is a probing frame.
  return frame.type === 'path_challenge' || frame.type === 'path_response' || frame.type === 'new_connection_id' || frame.type === 'padding' || frame.type === 'observed_address';
}
