/**
 * Packet assembly (RFC 9000 §17, RFC 9001 §5): the header of a packet written straight into
 * the datagram buffer, and the finished packet sealed and header-protected in place; the
 * buffers datagrams are cut from.
 *
 * @module
 */
import type { PacketKeys } from '../protection/packet-keys.ts';
import { protectHeader } from '../protection/packet-keys.ts';
import { FixedWriter } from '../wire/fixed-writer.ts';
import { QUIC_V1 } from '../wire/header.ts';
import { SPACE_APP, SPACE_INITIAL, type FrameRecord, type SpaceId } from './spaces.ts';

/** Largest packet number we will use (RFC 9000 §12.3: 2^62 − 1; we stop at 2^53). */
export const MAX_PN = Number.MAX_SAFE_INTEGER;
/** Size of the buffers outgoing datagrams are cut from. */
const SLAB_SIZE = 64 * 1024;

export interface PacketDraft {
  w: FixedWriter;
  start: number;
  space: SpaceId;
  pn: number;
  pnLen: number;
  pnOffset: number;
  lengthOffset: number;
  payloadStart: number;
  frames: FrameRecord[];
  ackEliciting: boolean;
  /** Multipath path id (1-RTT packets; 0 otherwise): its packet-number space and nonce. */
  pathId: number;
}

export interface HeaderFields {
  readonly space: SpaceId;
  readonly pn: number;
  /** Largest packet number of the space the peer acknowledged (−1 if none). */
  readonly largestAcked: number;
  readonly dcid: Uint8Array;
  /** Long headers: our connection ID. */
  readonly scid: Uint8Array | undefined;
  /** Initial packets: the token. */
  readonly token: Uint8Array | undefined;
  /** 1-RTT: the key phase bit. */
  readonly keyPhase: number;
  /** 1-RTT with multipath: the path id (default 0). */
  readonly pathId?: number;
}

/** Start a packet at `out[start]` (ending before `end`): header written, payload begins after it. */
export function beginPacket(out: Uint8Array, start: number, end: number, h: HeaderFields): PacketDraft | undefined {
  const pn = h.pn;
  // RFC 9000 §17.1 / Appendix A.2: enough bits for twice the range of unacknowledged packets.
  const unacked = h.largestAcked < 0 ? pn + 1 : pn - h.largestAcked;
  const pnLen = unacked < 0x80 ? 1 : unacked < 0x8000 ? 2 : unacked < 0x800000 ? 3 : 4;
  const w = new FixedWriter(out, start, end - 16);
  let lengthOffset = -1;
  if (h.space === SPACE_APP) {
    // RFC 9000 §17.3.1: 0 1 S R R K P P (spin bit 0).
    w.u8(0x40 | (h.keyPhase << 2) | (pnLen - 1)).bytes(h.dcid);
  } else {
    const scid = h.scid!;
    const type = h.space === SPACE_INITIAL ? 0 : 2;
    w.u8(0xc0 | (type << 4) | (pnLen - 1)).u32(QUIC_V1).u8(h.dcid.length).bytes(h.dcid).u8(scid.length).bytes(scid);
    if (h.space === SPACE_INITIAL) {
      const token = h.token ?? new Uint8Array(0);
      w.varint(token.length).bytes(token);
    }
    lengthOffset = w.pos;
    w.varint(0, 2);
  }
  if (w.remaining < pnLen + 20) return undefined;
  const pnOffset = w.pos;
  for (let i = pnLen - 1; i >= 0; i--) w.u8(Math.floor(pn / 2 ** (8 * i)) & 0xff);
  return { w, start, space: h.space, pn, pnLen, pnOffset, lengthOffset, payloadStart: w.pos, frames: [], ackEliciting: false, pathId: h.pathId ?? 0 };
}

/** The header-protection sample needs 4 bytes after the start of the packet number (RFC 9001 §5.4.2). */
export function padForSample(d: PacketDraft): void {
  const minPayload = 4 - d.pnLen;
  if (d.w.pos - d.payloadStart < minPayload) d.w.zeros(minPayload - (d.w.pos - d.payloadStart));
}

/** Seal a drafted packet in place with `keys`; returns its length. */
export function sealPacket(d: PacketDraft, keys: PacketKeys): number {
  padForSample(d);
  const payloadLen = d.w.pos - d.payloadStart;
  if (d.lengthOffset >= 0) {
    // Length = packet number + payload + tag, as a 2-byte varint.
    const len = d.pnLen + payloadLen + 16;
    d.w.buf[d.lengthOffset] = 0x40 | (len >> 8);
    d.w.buf[d.lengthOffset + 1] = len & 0xff;
  }
  const buf = d.w.buf;
  const header = buf.subarray(d.start, d.payloadStart);
  const end = d.payloadStart + keys.sealInto(d.pn, header, buf.subarray(d.payloadStart, d.w.pos), buf, d.payloadStart, d.pathId);
  protectHeader(buf.subarray(d.start, end), d.pnOffset - d.start, d.pnLen, keys.header);
  return end - d.start;
}

/**
 * Zeroed buffers for outgoing datagrams, carved from larger slabs: allocating a typed array
 * per packet was the single largest cost of the send path. A slab lives until every datagram
 * cut from it has been sent and dropped.
 */
export class DatagramSlab {
  #slab: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #size = 1024;

  take(size: number): Uint8Array {
    if (this.#slab.length - this.#pos < size) {
      // Start small (most connections send little) and grow to full slabs for bulk senders.
      this.#size = Math.min(SLAB_SIZE, this.#size * 4);
      this.#slab = new Uint8Array(Math.max(this.#size, size));
      this.#pos = 0;
    }
    const out = this.#slab.subarray(this.#pos, this.#pos + size);
    this.#pos += size;
    return out;
  }

  /** Give the unused tail of the last buffer taken back. */
  giveBack(bytes: number): void {
    this.#pos -= bytes;
  }
}
