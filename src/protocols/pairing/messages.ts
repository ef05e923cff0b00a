/**
 * Messages of `sdnet/pair/1`: JSON, externally tagged like the other device protocols
 * (`{"Start":{…}}`), one per length-prefixed frame; bytes are standard base64.
 *
 * Pairing with a code (the joiner opens one bidirectional stream to the initiator):
 *
 * | # | from      | message   | fields                                           |
 * |---|-----------|-----------|--------------------------------------------------|
 * | 1 | joiner    | `Start`   | `v` (1), `r` (R, 8 hex), `ya` (CPace share)       |
 * | 2 | initiator | `Reply`   | `yb` (CPace share), `tb` (its confirmation tag)   |
 * | 3 | joiner    | `Confirm` | `ta` (its tag), `sealed` (its device info, AEAD)  |
 * | 4 | initiator | `Done`    | `sealed` (its device info, AEAD)                  |
 * | – | initiator | `Fail`    | `code` (why it stops: a stable error code)        |
 * | – | joiner    | `Abort`   | `code` (why it stops)                             |
 *
 * Vouching (a device paired with both introduces one to the other; see vouch.ts):
 * `Introduce` / `IntroduceReply` (voucher → target), `Introduced` / `IntroducedReply`
 * (voucher → vouchee), `VouchHello` / `VouchDone` (vouchee → target); `Wait` keeps a stream alive
 * while a user is asked to confirm.
 *
 * Decoding is strict: a frame that is not one object with exactly one known tag and fields
 * of the right types and sizes is {@link StreamCode.MALFORMED_MESSAGE}; an unknown tag is
 * {@link StreamCode.UNKNOWN_MESSAGE}.
 *
 * @module
 */
import { base64 } from '@scure/base';
import { StreamCode } from '../codes.ts';
import { StreamProtocolError } from '../framing.ts';
import { MESSAGING_MAX_ID_LENGTH, PAIRING_MAX_MESSAGE_BYTES } from '../limits.ts';

/** The ALPN of pairing: the only one unpaired peers reach. */
export const PAIR_ALPN = 'sdnet/pair/1';
/** Version of the exchange carried in `Start`. */
export const PAIR_VERSION = 1;

/** An address as a peer tells it. */
export interface WireAddr {
  relay_urls: string[];
  direct_addresses: string[];
}

/** A device as a voucher describes it. */
export interface WireDevice extends WireAddr {
  endpoint_id: string;
  info: Record<string, unknown>;
}

export type PairMessage =
  | { Start: { v: number; r: string; ya: Uint8Array } }
  | { Reply: { yb: Uint8Array; tb: Uint8Array } }
  | { Confirm: { ta: Uint8Array; sealed: Uint8Array } }
  | { Done: { sealed: Uint8Array } }
  | { Fail: { code: string } }
  | { Abort: { code: string } }
  | { Introduce: { id: string; vouchee: WireDevice; issued_at: number; sig: Uint8Array } }
  | { IntroduceReply: { id: string; accepted: boolean; reason: string | null; target: WireDevice | null } }
  | { Introduced: { id: string; target: WireDevice; issued_at: number; sig: Uint8Array } }
  | { IntroducedReply: { id: string; ok: boolean } }
  | { VouchHello: { id: string; voucher: string } }
  | { VouchDone: { id: string } }
  | { Wait: { id: string } };

export type PairMessageType = PairMessage extends infer M ? (M extends Record<infer K, unknown> ? K : never) : never;

const TYPES = ['Start', 'Reply', 'Confirm', 'Done', 'Fail', 'Abort', 'Introduce', 'IntroduceReply', 'Introduced', 'IntroducedReply', 'VouchHello', 'VouchDone', 'Wait'] as const;

/** A frame that is not a valid pairing message. */
export class PairMessageError extends StreamProtocolError {
  constructor(code: 'ERR_PAIR_MESSAGE_MALFORMED' | 'ERR_PAIR_MESSAGE_UNKNOWN', message: string) {
    super(code, code === 'ERR_PAIR_MESSAGE_UNKNOWN' ? StreamCode.UNKNOWN_MESSAGE : StreamCode.MALFORMED_MESSAGE, message);
    this.name = 'PairMessageError';
  }
}

const malformed = (why: string): PairMessageError => new PairMessageError('ERR_PAIR_MESSAGE_MALFORMED', `Malformed pairing message: ${why}`);

/** Largest sealed payload (bytes). */
const MAX_SEALED_BYTES = 4096;
/** Largest error code string. */
const MAX_CODE_LENGTH = 64;
/** Addresses in a WireAddr. */
const MAX_WIRE_ADDRESSES = 16;
/** Largest address string. */
const MAX_ADDR_LENGTH = 300;

function toJson(v: unknown): unknown {
  if (v instanceof Uint8Array) return base64.encode(v);
  if (Array.isArray(v)) return v.map(toJson);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  return v;
}

export function encodePairMessage(message: PairMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(toJson(message)));
}

function bytes(o: Record<string, unknown>, key: string, exact?: number, max = MAX_SEALED_BYTES): Uint8Array {
  const v = o[key];
  if (typeof v !== 'string' || v.length > Math.ceil(max / 3) * 4 + 4) throw malformed(`${key} is not base64 of at most ${max} bytes`);
  let b: Uint8Array;
  try {
    b = base64.decode(v);
  } catch {
    throw malformed(`${key} is not base64`);
  }
  if (exact !== undefined && b.length !== exact) throw malformed(`${key} is not ${exact} bytes`);
  if (b.length > max) throw malformed(`${key} is larger than ${max} bytes`);
  return b;
}

function str(o: Record<string, unknown>, key: string, max: number, pattern?: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > max || (pattern !== undefined && !pattern.test(v))) throw malformed(`${key} is not a valid string`);
  return v;
}

function int(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw malformed(`${key} is not a non-negative integer`);
  return v;
}

function bool(o: Record<string, unknown>, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw malformed(`${key} is not a boolean`);
  return v;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function strings(o: Record<string, unknown>, key: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length > MAX_WIRE_ADDRESSES || !v.every((x) => typeof x === 'string' && x.length <= MAX_ADDR_LENGTH)) throw malformed(`${key} is not a list of at most ${MAX_WIRE_ADDRESSES} addresses`);
  return v as string[];
}

function device(v: unknown, what: string): WireDevice {
  const o = obj(v, what);
  const info = obj(o.info, `${what}.info`);
  if (JSON.stringify(info).length > MAX_SEALED_BYTES) throw malformed(`${what}.info is too large`);
  return { endpoint_id: str(o, 'endpoint_id', 64, /^[0-9a-f]{64}$/), info, relay_urls: strings(o, 'relay_urls'), direct_addresses: strings(o, 'direct_addresses') };
}

const ID = /^[0-9a-zA-Z-]{1,64}$/;
const CODE = /^[A-Z0-9_]{1,64}$/;

/**
 * Decode one frame.
 *
 * @throws {PairMessageError} for anything but one valid message
 */
export function decodePairMessage(frame: Uint8Array): PairMessage {
  if (frame.length > PAIRING_MAX_MESSAGE_BYTES) throw malformed('too large');
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(frame));
  } catch {
    throw malformed('not UTF-8 JSON');
  }
  const outer = obj(v, 'message');
  const keys = Object.keys(outer);
  if (keys.length !== 1) throw malformed('not exactly one tag');
  const type = keys[0]!;
  if (!(TYPES as readonly string[]).includes(type)) throw new PairMessageError('ERR_PAIR_MESSAGE_UNKNOWN', `Unknown pairing message ${type.slice(0, 32)}`);
  const o = obj(outer[type], type);
  switch (type as PairMessageType) {
    case 'Start':
      return { Start: { v: int(o, 'v'), r: str(o, 'r', 8, /^[0-9a-f]{8}$/), ya: bytes(o, 'ya', 32) } };
    case 'Reply':
      return { Reply: { yb: bytes(o, 'yb', 32), tb: bytes(o, 'tb', 64) } };
    case 'Confirm':
      return { Confirm: { ta: bytes(o, 'ta', 64), sealed: bytes(o, 'sealed') } };
    case 'Done':
      return { Done: { sealed: bytes(o, 'sealed') } };
    case 'Fail':
      return { Fail: { code: str(o, 'code', MAX_CODE_LENGTH, CODE) } };
    case 'Abort':
      return { Abort: { code: str(o, 'code', MAX_CODE_LENGTH, CODE) } };
    case 'Introduce':
      return { Introduce: { id: str(o, 'id', MESSAGING_MAX_ID_LENGTH, ID), vouchee: device(o.vouchee, 'vouchee'), issued_at: int(o, 'issued_at'), sig: bytes(o, 'sig', 64) } };
    case 'IntroduceReply': {
      const reason = o.reason === null ? null : str(o, 'reason', 256);
      const target = o.target === null ? null : device(o.target, 'target');
      return { IntroduceReply: { id: str(o, 'id', MESSAGING_MAX_ID_LENGTH, ID), accepted: bool(o, 'accepted'), reason, target } };
    }
    case 'Introduced':
      return { Introduced: { id: str(o, 'id', MESSAGING_MAX_ID_LENGTH, ID), target: device(o.target, 'target'), issued_at: int(o, 'issued_at'), sig: bytes(o, 'sig', 64) } };
    case 'IntroducedReply':
      return { IntroducedReply: { id: str(o, 'id', MESSAGING_MAX_ID_LENGTH, ID), ok: bool(o, 'ok') } };
    case 'VouchHello':
      return { VouchHello: { id: str(o, 'id', MESSAGING_MAX_ID_LENGTH, ID), voucher: str(o, 'voucher', 64, /^[0-9a-f]{64}$/) } };
    case 'VouchDone':
      return { VouchDone: { id: str(o, 'id', MESSAGING_MAX_ID_LENGTH, ID) } };
    case 'Wait':
      return { Wait: { id: str(o, 'id', MESSAGING_MAX_ID_LENGTH, ID) } };
  }
}

/** The tag of a message. */
export function pairMessageType(m: PairMessage): PairMessageType {
  return Object.keys(m)[0] as PairMessageType;
}
