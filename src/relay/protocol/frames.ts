/**
 * The relay frame codec: types 0–13 of iroh-relay 1.0 (`shared/docs/iroh-wire.md` §1.4–§1.6,
 * golden vectors in Appendix A). One frame is one binary WebSocket message: a QUIC varint
 * frame type, then a body whose layout depends on the type.
 *
 * Two decoders, one per direction, each accepting exactly the frames that direction carries:
 * {@link decodeRelayToClientFrame} (what a client receives) and
 * {@link decodeClientToRelayFrame} (what a relay receives). Both throw only
 * {@link DecodeError}, and check every length against the input and the limits before they
 * allocate. Datagram contents are returned as views into the input, not copies.
 *
 * @module
 */
import { PublicKey } from '../../identity/keys.ts';
import { DecodeError } from '../../util/errors.ts';
import { PostcardReader, PostcardWriter } from '../../util/postcard.ts';
import { decodeUtf8, utf8 } from '../../util/bytes.ts';
import { readVarint, VARINT_TOO_LARGE, VARINT_TRUNCATED } from '../../transport/quic/wire/varint.ts';
import type { KeyCache } from './key-cache.ts';
import type { ProtocolVersion } from './version.ts';
import { CHALLENGE_LENGTH, MAX_DENY_REASON_BYTES, MAX_PACKET_SIZE, PING_DATA_LENGTH } from './limits.ts';

/** Frame type numbers (iroh-wire §1.4, iroh `protos/common.rs`). */
export const FrameType = {
  ServerChallenge: 0,
  ClientAuth: 1,
  ServerConfirmsAuth: 2,
  ServerDeniesAuth: 3,
  ClientToRelayDatagram: 4,
  ClientToRelayDatagramBatch: 5,
  RelayToClientDatagram: 6,
  RelayToClientDatagramBatch: 7,
  EndpointGone: 8,
  Ping: 9,
  Pong: 10,
  Health: 11,
  Restarting: 12,
  Status: 13,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const FRAME_TYPE_NAMES: readonly string[] = Object.keys(FrameType);

/** The name of a frame type number, for messages and logs. */
export function frameTypeName(type: number): string {
  return FRAME_TYPE_NAMES[type] ?? `Unknown(${type})`;
}

/**
 * ECN codepoint of a datagram (iroh-wire §1.6): 0 not ECT, 1 ECT(1), 2 ECT(0), 3 CE. Only the
 * low two bits of the byte are meaningful.
 */
export type Ecn = 0 | 1 | 2 | 3;
export const Ecn = { NotEct: 0, Ect1: 1, Ect0: 2, Ce: 3 } as const;

/** `Status` codes (v2). iroh 1.0.2 knows 0 and 1; 2 is on iroh's main branch; others are "Unknown". */
export const StatusCode = { Healthy: 0, SameEndpointIdConnected: 1, RateLimited: 2 } as const;

/** Datagram frames, as the two directions carry them. */
export interface DatagramFrameBody {
  ecn: Ecn;
  /** 0 for a single datagram (types 4/6, or a batch with segment size 0). */
  segmentSize: number;
  /** One datagram, or several back to back when `segmentSize` > 0. A view into the input. */
  contents: Uint8Array;
}

/** A frame a relay sends to a client. */
export type RelayToClientFrame =
  | { type: typeof FrameType.ServerChallenge; challenge: Uint8Array }
  | { type: typeof FrameType.ServerConfirmsAuth }
  | { type: typeof FrameType.ServerDeniesAuth; reason: string }
  | ({ type: typeof FrameType.RelayToClientDatagram | typeof FrameType.RelayToClientDatagramBatch; src: PublicKey } & DatagramFrameBody)
  | { type: typeof FrameType.EndpointGone; endpointId: PublicKey }
  | { type: typeof FrameType.Ping | typeof FrameType.Pong; data: Uint8Array }
  | { type: typeof FrameType.Health; problem: string }
  | { type: typeof FrameType.Restarting; reconnectInMs: number; tryForMs: number }
  | { type: typeof FrameType.Status; status: number };

/**
 * A frame a client sends to a relay. The destination of a datagram frame is left as raw
 * bytes: the relay only looks it up among authenticated clients (whose keys it has
 * validated), so it never needs to validate a key it cannot deliver to.
 */
export type ClientToRelayFrame =
  | { type: typeof FrameType.ClientAuth; publicKey: PublicKey; signature: Uint8Array }
  | ({ type: typeof FrameType.ClientToRelayDatagram | typeof FrameType.ClientToRelayDatagramBatch; dst: Uint8Array } & DatagramFrameBody)
  | { type: typeof FrameType.Ping | typeof FrameType.Pong; data: Uint8Array };

/**
 * Read the frame type at the start of `frame`.
 *
 * @returns `[type, length of the varint]`
 * @throws {DecodeError} if the input is empty, the varint truncated, or the type unknown
 */
export function readFrameType(frame: Uint8Array): [type: FrameType, length: number] {
  // Fast path: every type fits in one byte today.
  const first = frame[0];
  if (first !== undefined && first <= FrameType.Status) return [first as FrameType, 1];
  const [value, length] = readVarint(frame, 0);
  if (value === VARINT_TRUNCATED) throw new DecodeError('Cannot decode relay frame: truncated frame type');
  // iroh-wire §1.4: unknown type ids are a hard error.
  if (value === VARINT_TOO_LARGE || value > FrameType.Status) {
    throw new DecodeError(`Cannot decode relay frame: unknown frame type ${value === VARINT_TOO_LARGE ? '(> 2^53)' : value}`);
  }
  // A non-minimal encoding of a known type (iroh's VarInt decoder accepts those too).
  return [value as FrameType, length];
}

/**
 * A plain `Uint8Array` view of the input (no copy). Node's `Buffer` is a `Uint8Array` whose
 * `slice()` aliases instead of copying; the decoders copy with `slice()`, so a Buffer (e.g.
 * from a WebSocket library) is viewed as a plain array first.
 */
function plain(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkBodySize(bodyLength: number): void {
  // iroh-wire §1.6 "Sizes": receivers reject a frame whose bytes after the type exceed 65536.
  if (bodyLength > MAX_PACKET_SIZE) throw new DecodeError(`Cannot decode relay frame: frame too large (${bodyLength} bytes after the type, limit ${MAX_PACKET_SIZE})`);
}

function exactBody(frame: Uint8Array, offset: number, length: number, name: string): Uint8Array {
  if (frame.length - offset !== length) {
    throw new DecodeError(`Cannot decode ${name}: body must be exactly ${length} bytes, got ${frame.length - offset}`);
  }
  return frame.subarray(offset);
}

function datagramBody(frame: Uint8Array, offset: number, batch: boolean, name: string): DatagramFrameBody {
  // iroh-wire §1.6: key[32] ‖ ecn u8 [‖ segment_size u16] ‖ contents; a batch needs ≥ 3 bytes after the key.
  const min = 32 + (batch ? 3 : 1);
  if (frame.length - offset < min) throw new DecodeError(`Cannot decode ${name}: body shorter than ${min} bytes`);
  const ecn = (frame[offset + 32]! & 0b11) as Ecn;
  const segmentSize = batch ? (frame[offset + 33]! << 8) | frame[offset + 34]! : 0;
  return { ecn, segmentSize, contents: frame.subarray(offset + min) };
}

/**
 * Decode a frame received by a client. `version` is the negotiated protocol version: `Health`
 * is only valid on v1 and `Status` only on v2 (iroh-wire §1.6, `FrameNotAllowedInVersion`).
 *
 * @throws {DecodeError} for any frame a relay may not send, or a malformed one
 */
export function decodeRelayToClientFrame(input: Uint8Array, version: ProtocolVersion, keys: KeyCache): RelayToClientFrame {
  const frame = plain(input);
  const [type, offset] = readFrameType(frame);
  checkBodySize(frame.length - offset);
  switch (type) {
    case FrameType.ServerChallenge: {
      // Postcard `[u8; 16]`: 16 raw bytes (iroh-wire §1.5).
      const body = exactBody(frame, offset, CHALLENGE_LENGTH, 'ServerChallenge');
      return { type, challenge: body.slice() };
    }
    case FrameType.ServerConfirmsAuth:
      // Postcard unit struct: no bytes.
      exactBody(frame, offset, 0, 'ServerConfirmsAuth');
      return { type };
    case FrameType.ServerDeniesAuth: {
      // Postcard `String`: varint length ‖ UTF-8.
      const r = new PostcardReader(frame.subarray(offset));
      const reason = r.string(MAX_PACKET_SIZE, 'ServerDeniesAuth reason');
      r.finish('ServerDeniesAuth');
      return { type, reason };
    }
    case FrameType.RelayToClientDatagram:
    case FrameType.RelayToClientDatagramBatch: {
      const src = keys.get(frame, offset);
      return { type, src, ...datagramBody(frame, offset, type === FrameType.RelayToClientDatagramBatch, frameTypeName(type)) };
    }
    case FrameType.EndpointGone: {
      // iroh-wire §1.6: body must be exactly 32 bytes.
      exactBody(frame, offset, 32, 'EndpointGone');
      return { type, endpointId: keys.get(frame, offset) };
    }
    case FrameType.Ping:
    case FrameType.Pong:
      // iroh-wire §1.6: exactly 8 bytes.
      return { type, data: exactBody(frame, offset, PING_DATA_LENGTH, frameTypeName(type)).slice() };
    case FrameType.Health:
      // iroh-wire §1.6: Health is only valid on a v1 connection.
      if (version !== 1) throw new DecodeError('Cannot decode Health: frame not allowed in protocol version 2');
      return { type, problem: decodeUtf8(frame.subarray(offset)) };
    case FrameType.Restarting: {
      const body = exactBody(frame, offset, 8, 'Restarting');
      const view = new DataView(body.buffer, body.byteOffset, 8);
      return { type, reconnectInMs: view.getUint32(0), tryForMs: view.getUint32(4) };
    }
    case FrameType.Status:
      // iroh-wire §1.6: Status is only valid from v2 on; one byte, unknown codes accepted.
      if (version < 2) throw new DecodeError('Cannot decode Status: frame not allowed in protocol version 1');
      if (frame.length - offset < 1) throw new DecodeError('Cannot decode Status: empty body');
      return { type, status: frame[offset]! };
    default:
      throw new DecodeError(`Cannot decode relay frame: ${frameTypeName(type)} is never sent by a relay`);
  }
}

/**
 * Decode a frame received by a relay.
 *
 * @throws {DecodeError} for any frame a client may not send, or a malformed one
 */
export function decodeClientToRelayFrame(input: Uint8Array): ClientToRelayFrame {
  const frame = plain(input);
  const [type, offset] = readFrameType(frame);
  checkBodySize(frame.length - offset);
  switch (type) {
    case FrameType.ClientAuth: {
      const { publicKey, signature } = decodeClientAuthBody(frame.subarray(offset));
      return { type, publicKey, signature };
    }
    case FrameType.ClientToRelayDatagram:
    case FrameType.ClientToRelayDatagramBatch: {
      const body = datagramBody(frame, offset, type === FrameType.ClientToRelayDatagramBatch, frameTypeName(type));
      return { type, dst: frame.subarray(offset, offset + 32), ...body };
    }
    case FrameType.Ping:
    case FrameType.Pong:
      return { type, data: exactBody(frame, offset, PING_DATA_LENGTH, frameTypeName(type)).slice() };
    default:
      throw new DecodeError(`Cannot decode relay frame: ${frameTypeName(type)} is never sent by a client`);
  }
}

/**
 * The body of `ClientAuth`: postcard `public_key[32] ‖ varint(64) ‖ signature[64]` — the
 * signature is a `serde_bytes` byte string, hence the `0x40` length byte (iroh-wire §1.5).
 *
 * @throws {DecodeError} if malformed or the key is not a valid Ed25519 point
 */
export function decodeClientAuthBody(body: Uint8Array): { publicKey: PublicKey; signature: Uint8Array } {
  const r = new PostcardReader(plain(body));
  const publicKey = PublicKey.fromBytes(r.fixed(32));
  const sigLength = r.length(64, 'ClientAuth signature');
  if (sigLength !== 64) throw new DecodeError(`Cannot decode ClientAuth: signature must be 64 bytes, got ${sigLength}`);
  const signature = r.fixed(64);
  r.finish('ClientAuth');
  return { publicKey, signature };
}

// ---------------------------------------------------------------------------------------
// Encoders. They throw RangeError/TypeError only for caller mistakes (a frame too large to
// be valid), never for anything a peer controls.

function withType(type: FrameType, bodyLength: number): Uint8Array {
  // Every type is < 64, so its varint is one byte.
  const out = new Uint8Array(1 + bodyLength);
  out[0] = type;
  return out;
}

/** `ServerChallenge`: `00 ‖ challenge[16]`. */
export function encodeServerChallenge(challenge: Uint8Array): Uint8Array {
  if (challenge.length !== CHALLENGE_LENGTH) throw new RangeError(`challenge must be ${CHALLENGE_LENGTH} bytes`);
  const out = withType(FrameType.ServerChallenge, CHALLENGE_LENGTH);
  out.set(challenge, 1);
  return out;
}

/** `ClientAuth`: `01 ‖ key[32] ‖ 40 ‖ signature[64]` (98 bytes). */
export function encodeClientAuth(publicKey: PublicKey, signature: Uint8Array): Uint8Array {
  if (signature.length !== 64) throw new RangeError('signature must be 64 bytes');
  const out = withType(FrameType.ClientAuth, 32 + 1 + 64);
  out.set(publicKey.bytes, 1);
  out[33] = 64;
  out.set(signature, 34);
  return out;
}

/** `ServerConfirmsAuth`: `02`. */
export function encodeServerConfirmsAuth(): Uint8Array {
  return Uint8Array.of(FrameType.ServerConfirmsAuth);
}

/** `ServerDeniesAuth`: `03 ‖ varint(len) ‖ reason`; the reason is cut to {@link MAX_DENY_REASON_BYTES}. */
export function encodeServerDeniesAuth(reason: string): Uint8Array {
  let bytes = utf8(reason);
  if (bytes.length > MAX_DENY_REASON_BYTES) bytes = utf8(decodeUtf8Lossy(bytes.subarray(0, MAX_DENY_REASON_BYTES)));
  const body = new PostcardWriter().byteString(bytes).finish();
  const out = withType(FrameType.ServerDeniesAuth, body.length);
  out.set(body, 1);
  return out;
}

function decodeUtf8Lossy(bytes: Uint8Array): string {
  // Dropping a cut multi-byte sequence at the end.
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes).replace(/\uFFFD+$/u, '');
}

/** Bytes of a datagram frame before its contents. */
export function datagramHeaderLength(batch: boolean): number {
  return 1 + 32 + 1 + (batch ? 2 : 0);
}

/**
 * A datagram frame of either direction: `type ‖ key[32] ‖ ecn ‖ [segment_size u16 ‖] contents`.
 * `type` must be one of 4, 5, 6, 7; `segmentSize` is written only for 5 and 7.
 *
 * @throws {RangeError} if the frame would exceed {@link MAX_PACKET_SIZE} (iroh-wire §1.6: the
 *   client refuses to send such a frame)
 */
export function encodeDatagramFrame(
  type: 4 | 5 | 6 | 7,
  key: Uint8Array,
  ecn: number,
  segmentSize: number,
  contents: Uint8Array | readonly Uint8Array[],
): Uint8Array {
  const batch = type === FrameType.ClientToRelayDatagramBatch || type === FrameType.RelayToClientDatagramBatch;
  const header = datagramHeaderLength(batch);
  let contentLength = 0;
  if (contents instanceof Uint8Array) contentLength = contents.length;
  else for (const c of contents) contentLength += c.length;
  if (header + contentLength > MAX_PACKET_SIZE) {
    throw new RangeError(`relay frame of ${header + contentLength} bytes exceeds MAX_PACKET_SIZE (${MAX_PACKET_SIZE})`);
  }
  if (key.length !== 32) throw new RangeError('key must be 32 bytes');
  if (batch && (!Number.isInteger(segmentSize) || segmentSize < 0 || segmentSize > 0xffff)) throw new RangeError('segmentSize must be a u16');
  const out = new Uint8Array(header + contentLength);
  out[0] = type;
  out.set(key, 1);
  out[33] = ecn & 0xff;
  if (batch) {
    out[34] = segmentSize >> 8;
    out[35] = segmentSize & 0xff;
  }
  if (contents instanceof Uint8Array) out.set(contents, header);
  else {
    let off = header;
    for (const c of contents) {
      out.set(c, off);
      off += c.length;
    }
  }
  return out;
}

/** Length of the frame a relay sends for a received datagram frame (see {@link writeForwardedFrame}). */
export function forwardedFrameLength(frameLength: number, typeLength: number): number {
  return frameLength - typeLength + 1;
}

/**
 * What a relay sends when it forwards a client's datagram frame: the same frame with type 4→6
 * or 5→7 and the destination key replaced by the source's (iroh-wire §1.8), written into
 * `out` (exactly {@link forwardedFrameLength} bytes), so the caller chooses the allocator.
 *
 * @param frame a datagram frame already accepted by {@link decodeClientToRelayFrame}
 * @param typeLength length of its type varint (1 unless the client used a longer encoding)
 * @param batch whether it is a batch (type 5)
 * @param offset where in `out` the frame starts (the relay puts its WebSocket header before it)
 */
export function writeForwardedFrame(out: Uint8Array, frame: Uint8Array, typeLength: number, batch: boolean, src: Uint8Array, offset = 0): Uint8Array {
  out[offset] = batch ? FrameType.RelayToClientDatagramBatch : FrameType.RelayToClientDatagram;
  out.set(src, offset + 1);
  out.set(frame.subarray(typeLength + 32), offset + 33);
  return out;
}

/** {@link writeForwardedFrame} into a new array. */
export function encodeForwardedFrame(frame: Uint8Array, typeLength: number, batch: boolean, src: Uint8Array): Uint8Array {
  return writeForwardedFrame(new Uint8Array(forwardedFrameLength(frame.length, typeLength)), frame, typeLength, batch, src);
}

/** `EndpointGone`: `08 ‖ id[32]`. */
export function encodeEndpointGone(endpointId: PublicKey | Uint8Array): Uint8Array {
  const bytes = endpointId instanceof Uint8Array ? endpointId : endpointId.bytes;
  if (bytes.length !== 32) throw new RangeError('endpoint id must be 32 bytes');
  const out = withType(FrameType.EndpointGone, 32);
  out.set(bytes, 1);
  return out;
}

/** `Ping` or `Pong`: type ‖ data[8]. */
export function encodePingPong(type: typeof FrameType.Ping | typeof FrameType.Pong, data: Uint8Array): Uint8Array {
  if (data.length !== PING_DATA_LENGTH) throw new RangeError(`ping data must be ${PING_DATA_LENGTH} bytes`);
  const out = withType(type, PING_DATA_LENGTH);
  out.set(data, 1);
  return out;
}

/** `Health` (v1 only): `0b ‖ UTF-8 text`. */
export function encodeHealth(problem: string): Uint8Array {
  const text = utf8(problem);
  if (text.length > MAX_PACKET_SIZE) throw new RangeError('Health text too long');
  const out = withType(FrameType.Health, text.length);
  out.set(text, 1);
  return out;
}

/** `Restarting`: `0c ‖ reconnect_in u32 ms ‖ try_for u32 ms`, big-endian. */
export function encodeRestarting(reconnectInMs: number, tryForMs: number): Uint8Array {
  const out = withType(FrameType.Restarting, 8);
  const view = new DataView(out.buffer);
  view.setUint32(1, clampU32(reconnectInMs));
  view.setUint32(5, clampU32(tryForMs));
  return out;
}

function clampU32(ms: number): number {
  return Math.min(0xffffffff, Math.max(0, Math.round(ms)));
}

/** `Status` (v2 only): `0d ‖ code`. */
export function encodeStatus(status: number): Uint8Array {
  if (!Number.isInteger(status) || status < 0 || status > 255) throw new RangeError('status must be a u8');
  return Uint8Array.of(FrameType.Status, status);
}

/** Encode any relay→client frame (the inverse of {@link decodeRelayToClientFrame}). */
export function encodeRelayToClientFrame(frame: RelayToClientFrame): Uint8Array {
  switch (frame.type) {
    case FrameType.ServerChallenge:
      return encodeServerChallenge(frame.challenge);
    case FrameType.ServerConfirmsAuth:
      return encodeServerConfirmsAuth();
    case FrameType.ServerDeniesAuth:
      return encodeServerDeniesAuth(frame.reason);
    case FrameType.RelayToClientDatagram:
    case FrameType.RelayToClientDatagramBatch:
      return encodeDatagramFrame(frame.type, frame.src.bytes, frame.ecn, frame.segmentSize, frame.contents);
    case FrameType.EndpointGone:
      return encodeEndpointGone(frame.endpointId);
    case FrameType.Ping:
    case FrameType.Pong:
      return encodePingPong(frame.type, frame.data);
    case FrameType.Health:
      return encodeHealth(frame.problem);
    case FrameType.Restarting:
      return encodeRestarting(frame.reconnectInMs, frame.tryForMs);
    case FrameType.Status:
      return encodeStatus(frame.status);
  }
}

/** Encode any client→relay frame (the inverse of {@link decodeClientToRelayFrame}). */
export function encodeClientToRelayFrame(frame: ClientToRelayFrame): Uint8Array {
  switch (frame.type) {
    case FrameType.ClientAuth:
      return encodeClientAuth(frame.publicKey, frame.signature);
    case FrameType.ClientToRelayDatagram:
    case FrameType.ClientToRelayDatagramBatch:
      return encodeDatagramFrame(frame.type, frame.dst, frame.ecn, frame.segmentSize, frame.contents);
    case FrameType.Ping:
    case FrameType.Pong:
      return encodePingPong(frame.type, frame.data);
  }
}
