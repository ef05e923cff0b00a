/**
 * QUIC packet headers (RFC 8999 §5, RFC 9000 §17): the unprotected part of long and short
 * headers, enough to route a datagram and find where each coalesced packet ends. Header
 * protection (first-byte low bits and the packet number) is removed later, with keys.
 *
 * @module
 */
import { ByteReader } from './reader.ts';
import { DecodeError } from '../../../util/errors.ts';

export const QUIC_V1 = 0x00000001;
/** RFC 9000 §17.2: connection IDs in v1 long headers are at most 20 bytes. */
export const MAX_CID_LENGTH = 20;

export type LongPacketType = 'initial' | '0rtt' | 'handshake' | 'retry';
const LONG_TYPES: readonly LongPacketType[] = ['initial', '0rtt', 'handshake', 'retry'];

export interface LongHeader {
  readonly form: 'long';
  readonly type: LongPacketType;
  readonly version: number;
  readonly dcid: Uint8Array;
  readonly scid: Uint8Array;
  /** Initial packets only. */
  readonly token: Uint8Array;
  /** Offset of the (protected) packet number, relative to the datagram. */
  readonly pnOffset: number;
  /** Offset just past this packet (from the Length field; Retry: end of datagram). */
  readonly end: number;
  /** Offset where this packet starts. */
  readonly start: number;
}

export interface VersionNegotiation {
  readonly form: 'version-negotiation';
  readonly dcid: Uint8Array;
  readonly scid: Uint8Array;
  readonly versions: readonly number[];
  readonly start: number;
  readonly end: number;
}

export interface ShortHeader {
  readonly form: 'short';
  readonly dcid: Uint8Array;
  readonly pnOffset: number;
  readonly start: number;
  /** A short-header packet runs to the end of the datagram. */
  readonly end: number;
}

export type PacketHeader = LongHeader | ShortHeader | VersionNegotiation;

/**
 * Parse the header of the packet starting at `offset`. `shortDcidLength` is the length of
 * the connection IDs this endpoint issues (short headers do not carry it).
 *
 * @throws {DecodeError} when the header is malformed or runs past the datagram
 */
export function parseHeader(datagram: Uint8Array, offset: number, shortDcidLength: number): PacketHeader {
  const r = new ByteReader(datagram, offset);
  const first = r.u8('first byte');
  if ((first & 0x80) === 0) {
    // RFC 9000 §17.3.1: the fixed bit MUST be 1 (we never negotiate grease_quic_bit).
    if ((first & 0x40) === 0) throw new DecodeError('Cannot decode short header: fixed bit is 0');
    // A view, not a copy: this runs for every 1-RTT datagram.
    const dcid = r.bytes(shortDcidLength, 'short header DCID');
    return { form: 'short', dcid, pnOffset: r.pos, start: offset, end: datagram.length };
  }
  const version = r.u32('version');
  const dcidLen = r.u8('DCID length');
  // RFC 8999 §5.1 allows up to 255; RFC 9000 §17.2 caps v1 at 20 (checked per version below).
  const dcid = r.bytes(dcidLen, 'DCID').slice();
  const scidLen = r.u8('SCID length');
  const scid = r.bytes(scidLen, 'SCID').slice();
  if (version === 0) {
    // RFC 9000 §17.2.1: Version Negotiation lists 32-bit versions to the end of the datagram.
    if (r.remaining % 4 !== 0) throw new DecodeError('Cannot decode Version Negotiation: version list is not a multiple of 4');
    const versions: number[] = [];
    while (!r.done) versions.push(r.u32());
    return { form: 'version-negotiation', dcid, scid, versions, start: offset, end: datagram.length };
  }
  if (version !== QUIC_V1) {
    // Unknown version: the caller may answer with Version Negotiation (RFC 9000 §6.1).
    throw new UnsupportedVersionError(version, dcid, scid);
  }
  if (dcidLen > MAX_CID_LENGTH || scidLen > MAX_CID_LENGTH) throw new DecodeError('Cannot decode long header: connection ID longer than 20 bytes');
  // RFC 9000 §17.2: the fixed bit MUST be 1 (we never negotiate grease_quic_bit).
  if ((first & 0x40) === 0) throw new DecodeError('Cannot decode long header: fixed bit is 0');
  const type = LONG_TYPES[(first >> 4) & 0x03]!;
  if (type === 'retry') {
    return { form: 'long', type, version, dcid, scid, token: new Uint8Array(0), pnOffset: r.pos, start: offset, end: datagram.length };
  }
  let token: Uint8Array = new Uint8Array(0);
  if (type === 'initial') {
    const tokenLen = r.varint('token length');
    token = r.bytes(tokenLen, 'token').slice();
  }
  const length = r.varint('packet length');
  const pnOffset = r.pos;
  if (length > r.remaining) throw new DecodeError('Cannot decode long header: Length runs past the datagram');
  // RFC 9000 §17.2: Length covers the packet number and payload; at least 1 + 16 (tag) bytes follow.
  if (length < 1 + 16) throw new DecodeError('Cannot decode long header: packet too short');
  return { form: 'long', type, version, dcid, scid, token, pnOffset, start: offset, end: pnOffset + length };
}

/** A long header with a version we do not speak; carries what Version Negotiation needs. */
export class UnsupportedVersionError extends DecodeError {
  readonly version: number;
  readonly dcid: Uint8Array;
  readonly scid: Uint8Array;
  constructor(version: number, dcid: Uint8Array, scid: Uint8Array) {
    super(`Cannot decode long header: unsupported version 0x${version.toString(16)}`);
    this.version = version;
    this.dcid = dcid;
    this.scid = scid;
  }
}
