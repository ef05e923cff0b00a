/**
 * TLS 1.3 handshake message codecs (RFC 8446 §4), as used inside QUIC CRYPTO frames
 * (RFC 9001 §4: no record layer). Decoders throw only `DecodeError` and never read past
 * the message; the session maps that to a `decode_error` alert.
 *
 * Extensions stay as raw `{ type, data }` here; `extensions.ts` decodes the bodies we use.
 *
 * @module
 */
import { ByteReader } from '../wire/reader.ts';
import { ByteWriter } from '../wire/writer.ts';
import { DecodeError } from '../../../util/errors.ts';
import { HandshakeType, LEGACY_VERSION } from './constants.ts';

export interface Extension {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface ClientHello {
  random: Uint8Array;
  sessionId: Uint8Array;
  cipherSuites: number[];
  compressionMethods: Uint8Array;
  extensions: Extension[];
}

export interface ServerHello {
  random: Uint8Array;
  sessionIdEcho: Uint8Array;
  cipherSuite: number;
  compressionMethod: number;
  extensions: Extension[];
}

export interface EncryptedExtensions {
  extensions: Extension[];
}

export interface CertificateRequest {
  context: Uint8Array;
  extensions: Extension[];
}

export interface CertificateEntry {
  data: Uint8Array;
  extensions: Extension[];
}

export interface Certificate {
  context: Uint8Array;
  entries: CertificateEntry[];
}

export interface CertificateVerify {
  scheme: number;
  signature: Uint8Array;
}

export interface Finished {
  verifyData: Uint8Array;
}

/** One framed handshake message: type and body. */
export interface HandshakeMessage {
  type: number;
  body: Uint8Array;
}

/** Frame a handshake message: `msg_type(1) ‖ length(3) ‖ body` (RFC 8446 §4). */
export function frameHandshake(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  out[0] = type;
  out[1] = body.length >>> 16;
  out[2] = (body.length >>> 8) & 0xff;
  out[3] = body.length & 0xff;
  out.set(body, 4);
  return out;
}

/**
 * Read an extension block (RFC 8446 §4.2). "There MUST NOT be more than one extension of
 * the same type in a given extension block" — a duplicate is reported by the caller through
 * {@link findDuplicateExtension}, because it calls for illegal_parameter, not decode_error.
 */
export function readExtensions(r: ByteReader, what: string): Extension[] {
  const block = r.sub(2, `${what} extensions`);
  const out: Extension[] = [];
  while (!block.done) {
    const type = block.u16(`${what} extension type`);
    out.push({ type, data: block.vector(2, `${what} extension ${type}`) });
  }
  return out;
}

export function findDuplicateExtension(extensions: readonly Extension[]): number | undefined {
  const seen = new Set<number>();
  for (const e of extensions) {
    if (seen.has(e.type)) return e.type;
    seen.add(e.type);
  }
  return undefined;
}

export function writeExtensions(w: ByteWriter, extensions: readonly Extension[]): void {
  w.section(2, () => {
    for (const e of extensions) w.u16(e.type).vector(2, e.data);
  });
}

export function encodeClientHello(ch: ClientHello): Uint8Array {
  const w = new ByteWriter(512);
  w.u16(LEGACY_VERSION).bytes(ch.random).vector(1, ch.sessionId);
  w.section(2, () => {
    for (const s of ch.cipherSuites) w.u16(s);
  });
  w.vector(1, ch.compressionMethods);
  writeExtensions(w, ch.extensions);
  return frameHandshake(HandshakeType.client_hello, w.finish());
}

/** Decode a ClientHello body. The legacy_version is checked by the server logic. */
export function decodeClientHello(body: Uint8Array): ClientHello & { legacyVersion: number } {
  const r = new ByteReader(body);
  const legacyVersion = r.u16('ClientHello version');
  const random = r.bytes(32, 'ClientHello random');
  const sessionId = r.vector(1, 'ClientHello session id', 0, 32);
  const suites = r.sub(2, 'ClientHello cipher suites', 2, 0xfffe);
  if (suites.remaining % 2 !== 0) throw new DecodeError('Cannot decode ClientHello: odd cipher suite list');
  const cipherSuites: number[] = [];
  while (!suites.done) cipherSuites.push(suites.u16());
  const compressionMethods = r.vector(1, 'ClientHello compression methods', 1, 255);
  const extensions = readExtensions(r, 'ClientHello');
  r.expectEnd('ClientHello');
  return { legacyVersion, random, sessionId, cipherSuites, compressionMethods, extensions };
}

export function encodeServerHello(sh: ServerHello): Uint8Array {
  const w = new ByteWriter(128);
  w.u16(LEGACY_VERSION).bytes(sh.random).vector(1, sh.sessionIdEcho).u16(sh.cipherSuite).u8(sh.compressionMethod);
  writeExtensions(w, sh.extensions);
  return frameHandshake(HandshakeType.server_hello, w.finish());
}

export function decodeServerHello(body: Uint8Array): ServerHello & { legacyVersion: number } {
  const r = new ByteReader(body);
  const legacyVersion = r.u16('ServerHello version');
  const random = r.bytes(32, 'ServerHello random');
  const sessionIdEcho = r.vector(1, 'ServerHello session id', 0, 32);
  const cipherSuite = r.u16('ServerHello cipher suite');
  const compressionMethod = r.u8('ServerHello compression');
  const extensions = readExtensions(r, 'ServerHello');
  r.expectEnd('ServerHello');
  return { legacyVersion, random, sessionIdEcho, cipherSuite, compressionMethod, extensions };
}

export function encodeEncryptedExtensions(ee: EncryptedExtensions): Uint8Array {
  const w = new ByteWriter(128);
  writeExtensions(w, ee.extensions);
  return frameHandshake(HandshakeType.encrypted_extensions, w.finish());
}

export function decodeEncryptedExtensions(body: Uint8Array): EncryptedExtensions {
  const r = new ByteReader(body);
  const extensions = readExtensions(r, 'EncryptedExtensions');
  r.expectEnd('EncryptedExtensions');
  return { extensions };
}

export function encodeCertificateRequest(cr: CertificateRequest): Uint8Array {
  const w = new ByteWriter(64);
  w.vector(1, cr.context);
  writeExtensions(w, cr.extensions);
  return frameHandshake(HandshakeType.certificate_request, w.finish());
}

export function decodeCertificateRequest(body: Uint8Array): CertificateRequest {
  const r = new ByteReader(body);
  const context = r.vector(1, 'CertificateRequest context');
  const extensions = readExtensions(r, 'CertificateRequest');
  r.expectEnd('CertificateRequest');
  return { context, extensions };
}

export function encodeCertificate(c: Certificate): Uint8Array {
  const w = new ByteWriter(256);
  w.vector(1, c.context);
  w.section(3, () => {
    for (const e of c.entries) {
      w.vector(3, e.data);
      writeExtensions(w, e.extensions);
    }
  });
  return frameHandshake(HandshakeType.certificate, w.finish());
}

/** Decode a Certificate (RFC 8446 §4.4.2); `maxEntries` bounds the chain before it is built. */
export function decodeCertificate(body: Uint8Array, maxEntries: number): Certificate {
  const r = new ByteReader(body);
  const context = r.vector(1, 'Certificate context');
  const list = r.sub(3, 'Certificate list');
  const entries: CertificateEntry[] = [];
  while (!list.done) {
    if (entries.length >= maxEntries) throw new DecodeError(`Cannot decode Certificate: more than ${maxEntries} entries`);
    const data = list.vector(3, 'certificate entry', 1);
    entries.push({ data, extensions: readExtensions(list, 'certificate entry') });
  }
  r.expectEnd('Certificate');
  return { context, entries };
}

export function encodeCertificateVerify(cv: CertificateVerify): Uint8Array {
  const w = new ByteWriter(80);
  w.u16(cv.scheme).vector(2, cv.signature);
  return frameHandshake(HandshakeType.certificate_verify, w.finish());
}

export function decodeCertificateVerify(body: Uint8Array): CertificateVerify {
  const r = new ByteReader(body);
  const scheme = r.u16('CertificateVerify scheme');
  const signature = r.vector(2, 'CertificateVerify signature');
  r.expectEnd('CertificateVerify');
  return { scheme, signature };
}

export function encodeFinished(f: Finished): Uint8Array {
  return frameHandshake(HandshakeType.finished, f.verifyData);
}

/** Split a byte stream into whole handshake messages, bounded by `maxBody`. */
export class HandshakeReassembler {
  #buf: Uint8Array = new Uint8Array(0);
  readonly #maxBody: number;

  constructor(maxBody: number) {
    this.#maxBody = maxBody;
  }

  /** Bytes held that do not yet form a whole message. */
  get buffered(): number {
    return this.#buf.length;
  }

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    const next = new Uint8Array(this.#buf.length + data.length);
    next.set(this.#buf);
    next.set(data, this.#buf.length);
    this.#buf = next;
  }

  /**
   * The next whole message with its raw bytes (for the transcript), or undefined.
   *
   * @throws {DecodeError} if a message declares a body longer than the limit
   */
  next(): (HandshakeMessage & { raw: Uint8Array }) | undefined {
    if (this.#buf.length < 4) return undefined;
    const len = (this.#buf[1]! << 16) | (this.#buf[2]! << 8) | this.#buf[3]!;
    if (len > this.#maxBody) throw new DecodeError(`Cannot decode handshake message: ${len} bytes exceed the limit of ${this.#maxBody}`);
    if (this.#buf.length < 4 + len) return undefined;
    const raw = this.#buf.slice(0, 4 + len);
    this.#buf = this.#buf.slice(4 + len);
    return { type: raw[0]!, body: raw.subarray(4), raw };
  }
}
