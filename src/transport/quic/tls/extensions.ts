/**
 * Codecs for the bodies of the TLS extensions sdnet sends or reads (RFC 8446 §4.2,
 * RFC 6066 §3 server_name, RFC 7301 ALPN, RFC 7250 §3 certificate types).
 *
 * @module
 */
import { ByteReader } from '../wire/reader.ts';
import { ByteWriter } from '../wire/writer.ts';
import { DecodeError } from '../../../util/errors.ts';

/** A list of u16 values behind a 2-byte length (supported_groups, signature_algorithms, ...). */
export function encodeU16List(values: readonly number[]): Uint8Array {
  const w = new ByteWriter(2 + 2 * values.length);
  w.section(2, () => values.forEach((v) => w.u16(v)));
  return w.finish();
}

export function decodeU16List(data: Uint8Array, what: string): number[] {
  const r = new ByteReader(data);
  const list = r.sub(2, what, 2);
  if (list.remaining % 2 !== 0) throw new DecodeError(`Cannot decode ${what}: odd length`);
  const out: number[] = [];
  while (!list.done) out.push(list.u16());
  r.expectEnd(what);
  return out;
}

/** ClientHello supported_versions: `u8 length ‖ u16*` (RFC 8446 §4.2.1). */
export function encodeSupportedVersionsClient(versions: readonly number[]): Uint8Array {
  const w = new ByteWriter(1 + 2 * versions.length);
  w.section(1, () => versions.forEach((v) => w.u16(v)));
  return w.finish();
}

export function decodeSupportedVersionsClient(data: Uint8Array): number[] {
  const r = new ByteReader(data);
  const list = r.sub(1, 'supported_versions', 2, 254);
  if (list.remaining % 2 !== 0) throw new DecodeError('Cannot decode supported_versions: odd length');
  const out: number[] = [];
  while (!list.done) out.push(list.u16());
  r.expectEnd('supported_versions');
  return out;
}

/** A single u16 (ServerHello supported_versions, HelloRetryRequest key_share). */
export function encodeU16(v: number): Uint8Array {
  return Uint8Array.of(v >> 8, v & 0xff);
}

export function decodeU16(data: Uint8Array, what: string): number {
  const r = new ByteReader(data);
  const v = r.u16(what);
  r.expectEnd(what);
  return v;
}

export interface KeyShareEntry {
  group: number;
  keyExchange: Uint8Array;
}

/** ClientHello key_share: `u16 length ‖ (group u16 ‖ key_exchange<1..2^16-1>)*`. */
export function encodeKeyShareClient(entries: readonly KeyShareEntry[]): Uint8Array {
  const w = new ByteWriter(64);
  w.section(2, () => entries.forEach((e) => w.u16(e.group).vector(2, e.keyExchange)));
  return w.finish();
}

export function decodeKeyShareClient(data: Uint8Array): KeyShareEntry[] {
  const r = new ByteReader(data);
  const list = r.sub(2, 'key_share');
  const out: KeyShareEntry[] = [];
  while (!list.done) out.push({ group: list.u16('key_share group'), keyExchange: list.vector(2, 'key_share key', 1) });
  r.expectEnd('key_share');
  return out;
}

/** ServerHello key_share: a single entry. */
export function encodeKeyShareServer(entry: KeyShareEntry): Uint8Array {
  const w = new ByteWriter(40);
  w.u16(entry.group).vector(2, entry.keyExchange);
  return w.finish();
}

export function decodeKeyShareServer(data: Uint8Array): KeyShareEntry {
  const r = new ByteReader(data);
  const entry = { group: r.u16('key_share group'), keyExchange: r.vector(2, 'key_share key', 1) };
  r.expectEnd('key_share');
  return entry;
}

/** ALPN: `u16 length ‖ (u8 length ‖ name)*`, names 1..255 bytes (RFC 7301 §3.1). */
export function encodeAlpn(protocols: readonly Uint8Array[]): Uint8Array {
  const w = new ByteWriter(64);
  w.section(2, () => protocols.forEach((p) => w.vector(1, p)));
  return w.finish();
}

export function decodeAlpn(data: Uint8Array): Uint8Array[] {
  const r = new ByteReader(data);
  const list = r.sub(2, 'ALPN', 2);
  const out: Uint8Array[] = [];
  while (!list.done) out.push(list.vector(1, 'ALPN protocol', 1));
  r.expectEnd('ALPN');
  return out;
}

/** server_name with one host_name entry (RFC 6066 §3). */
export function encodeServerName(host: string): Uint8Array {
  const name = new TextEncoder().encode(host);
  const w = new ByteWriter(8 + name.length);
  w.section(2, () => w.u8(0).vector(2, name));
  return w.finish();
}

/** The host_name in a server_name extension, if any. */
export function decodeServerName(data: Uint8Array): string | undefined {
  const r = new ByteReader(data);
  const list = r.sub(2, 'server_name', 1);
  let host: string | undefined;
  while (!list.done) {
    const type = list.u8('server_name type');
    const name = list.vector(2, 'server_name', 1);
    if (type === 0) {
      for (const b of name) if (b < 0x21 || b > 0x7e) throw new DecodeError('Cannot decode server_name: not a printable ASCII host name');
      host = new TextDecoder().decode(name);
    }
  }
  r.expectEnd('server_name');
  return host;
}

/** ClientHello client/server_certificate_type: `u8 length ‖ u8*` (RFC 7250 §3). */
export function encodeCertTypeList(types: readonly number[]): Uint8Array {
  return Uint8Array.of(types.length, ...types);
}

export function decodeCertTypeList(data: Uint8Array): number[] {
  const r = new ByteReader(data);
  const list = r.vector(1, 'certificate type list', 1);
  r.expectEnd('certificate type list');
  return [...list];
}

/** EncryptedExtensions certificate type: a single u8 (RFC 7250 §3). */
export function decodeCertType(data: Uint8Array): number {
  const r = new ByteReader(data);
  const v = r.u8('certificate type');
  r.expectEnd('certificate type');
  return v;
}

/** psk_key_exchange_modes: `u8 length ‖ u8*` (RFC 8446 §4.2.9). */
export function encodePskModes(modes: readonly number[]): Uint8Array {
  return Uint8Array.of(modes.length, ...modes);
}
