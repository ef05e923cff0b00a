/**
 * Pkarr signed packets carrying iroh's `_iroh` TXT records (iroh-wire.md §6.2–6.3,
 * pairing-transfer.md C): what an endpoint publishes to a pkarr relay and what a resolver
 * gets back.
 *
 * A signed packet on the wire (the body of `PUT/GET /pkarr/<z32>`) is
 * `signature (64) ‖ timestamp µs (u64 BE) ‖ DNS message (≤ 1000 bytes)`; the key is the
 * z-base-32 name in the URL. The signature covers the BEP-44 style
 * `3:seqi<timestamp>e1:v<len>:<dns>`.
 *
 * @module
 */
import { PublicKey, type SecretKey, SIGNATURE_LENGTH } from '../identity/keys.ts';
import { RelayUrl } from '../identity/relay-url.ts';
import { SocketAddr } from '../identity/socket-addr.ts';
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import { BASE32_Z, encodeBase32 } from '../util/base32.ts';
import { concatBytes } from '../util/bytes.ts';
import { DecodeError } from '../util/errors.ts';
import { CLASS_IN, decodeDnsMessage, encodeDnsMessage, FLAG_RESPONSE, sameName, txt, TYPE_TXT, type DnsMessage, type DnsRecord } from './dns.ts';
import { MAX_PKARR_BODY_BYTES, MAX_PKARR_DNS_BYTES, MAX_USER_DATA_BYTES, PKARR_TXT_TTL_S } from './limits.ts';

/** The label iroh puts in front of the key (iroh-wire §6.2). */
export const IROH_TXT_LABEL = '_iroh';

/** What an endpoint says about itself in discovery. */
export interface EndpointInfo {
  readonly id: PublicKey;
  readonly relayUrls: readonly RelayUrl[];
  readonly directAddresses: readonly SocketAddr[];
  /** iroh's `user-data` (≤ 245 bytes). */
  readonly userData?: string | undefined;
}

/** The z-base-32 form of a key (pkarr / DNS names). */
export function z32(id: PublicKey): string {
  return encodeBase32(id.bytes, BASE32_Z);
}

/** `EndpointInfo` → `EndpointAddr` (user-data dropped). */
export function infoToAddr(info: EndpointInfo): EndpointAddr {
  return EndpointAddr.from({ id: info.id, relayUrls: [...info.relayUrls], directAddresses: [...info.directAddresses] });
}

/** The TXT strings iroh writes for an endpoint: one `key=value` per record (iroh-wire §6.2). */
export function infoTxtStrings(info: Omit<EndpointInfo, 'id'>): string[] {
  const out: string[] = [];
  for (const r of info.relayUrls) out.push(`relay=${r.toString()}`);
  for (const a of info.directAddresses) out.push(`addr=${a.toString()}`);
  if (info.userData !== undefined) {
    if (new TextEncoder().encode(info.userData).length > MAX_USER_DATA_BYTES) throw new RangeError(`user-data is at most ${MAX_USER_DATA_BYTES} bytes`);
    out.push(`user-data=${info.userData}`);
  }
  return out;
}

/**
 * Read `key=value` TXT strings into the fields of an EndpointInfo. Unknown keys and values
 * that do not parse are skipped (a hint is only a hint: the dial proves the id).
 */
export function parseInfoTxt(id: PublicKey, strings: readonly string[]): EndpointInfo {
  const relayUrls: RelayUrl[] = [];
  const direct: SocketAddr[] = [];
  let userData: string | undefined;
  for (const s of strings) {
    const eq = s.indexOf('=');
    if (eq < 0) continue;
    const key = s.slice(0, eq);
    // iroh splits on '=' and keeps the first two pieces (iroh-wire §6.2).
    const value = s.slice(eq + 1).split('=')[0]!;
    try {
      if (key === 'relay') relayUrls.push(RelayUrl.parse(value));
      else if (key === 'addr') direct.push(SocketAddr.parse(value));
      else if (key === 'user-data' && value.length <= MAX_USER_DATA_BYTES) userData = value;
    } catch {
      // not usable: skipped
    }
  }
  return { id, relayUrls, directAddresses: direct, ...(userData !== undefined ? { userData } : {}) };
}

/** The DNS message iroh publishes: a reply with id 0, one `_iroh.<z32>` TXT answer per attribute, TTL 30 s. */
export function encodeInfoDns(info: EndpointInfo): Uint8Array {
  const name = `${IROH_TXT_LABEL}.${z32(info.id)}`;
  const answers: DnsRecord[] = infoTxtStrings(info).map((s) => ({ name, class: CLASS_IN, ttl: PKARR_TXT_TTL_S, data: { type: TYPE_TXT, strings: [txt.encode(s)] } }));
  return encodeDnsMessage({ id: 0, flags: FLAG_RESPONSE, answers }, { maxBytes: MAX_PKARR_DNS_BYTES });
}

/** The `_iroh` TXT strings for `id` found in a message's answers (owner `_iroh.<z32>[.origin]`). */
export function irohTxtStrings(msg: DnsMessage, id: PublicKey, origin = ''): string[] {
  const name = `${IROH_TXT_LABEL}.${z32(id)}${origin === '' ? '' : `.${origin.replace(/\.$/, '')}`}`;
  const out: string[] = [];
  for (const a of msg.answers) {
    if (a.data.type !== TYPE_TXT || !sameName(a.name, name) || !('strings' in a.data)) continue;
    out.push(a.data.strings.map((b) => txt.decode(b)).join(''));
  }
  return out;
}

/** The message a pkarr signature covers (BEP 44: `3:seqi<ts>e1:v<len>:<dns>`). */
export function pkarrSignable(timestampUs: bigint, dns: Uint8Array): Uint8Array {
  return concatBytes(new TextEncoder().encode(`3:seqi${timestampUs}e1:v${dns.length}:`), dns);
}

/** A verified signed packet. */
export interface SignedPacket {
  readonly key: PublicKey;
  readonly timestampUs: bigint;
  readonly dns: Uint8Array;
  /** The relay body: signature ‖ timestamp ‖ DNS. */
  readonly body: Uint8Array;
}

/**
 * Sign `dns` as `secret`'s record at `timestampUs`; returns the relay body.
 *
 * @throws {RangeError} if `dns` is above 1000 bytes
 */
export function signPacket(secret: SecretKey, dns: Uint8Array, timestampUs: bigint): Uint8Array {
  if (dns.length > MAX_PKARR_DNS_BYTES) throw new RangeError(`A pkarr DNS message is at most ${MAX_PKARR_DNS_BYTES} bytes`);
  const sig = secret.sign(pkarrSignable(timestampUs, dns)).toBytes();
  const body = new Uint8Array(SIGNATURE_LENGTH + 8 + dns.length);
  body.set(sig, 0);
  new DataView(body.buffer).setBigUint64(SIGNATURE_LENGTH, timestampUs, false);
  body.set(dns, SIGNATURE_LENGTH + 8);
  return body;
}

/**
 * Check a relay body against `key`: size, signature, and a DNS message that decodes.
 *
 * @throws {DecodeError} on anything else
 */
export function verifyPacket(key: PublicKey, body: Uint8Array): SignedPacket & { message: DnsMessage } {
  if (body.length < SIGNATURE_LENGTH + 8) throw new DecodeError('pkarr packet shorter than signature and timestamp');
  if (body.length > MAX_PKARR_BODY_BYTES) throw new DecodeError(`pkarr packet above ${MAX_PKARR_BODY_BYTES} bytes`);
  const sig = body.subarray(0, SIGNATURE_LENGTH);
  const timestampUs = new DataView(body.buffer, body.byteOffset, body.byteLength).getBigUint64(SIGNATURE_LENGTH, false);
  const dns = body.subarray(SIGNATURE_LENGTH + 8);
  if (!key.verify(pkarrSignable(timestampUs, dns), sig)) throw new DecodeError('pkarr packet signature does not verify');
  const message = decodeDnsMessage(dns);
  return { key, timestampUs, dns: dns.slice(), body: body.slice(), message };
}

/** The EndpointInfo in a verified packet. */
export function packetInfo(packet: SignedPacket & { message: DnsMessage }): EndpointInfo {
  return parseInfoTxt(packet.key, irohTxtStrings(packet.message, packet.key));
}

/** Microseconds since the epoch, strictly increasing within this process (iroh-wire §6.3). */
let lastTimestampUs = 0n;
export function pkarrTimestampNow(): bigint {
  let t = BigInt(Date.now()) * 1000n;
  if (t <= lastTimestampUs) t = lastTimestampUs + 1n;
  lastTimestampUs = t;
  return t;
}

/** Parse a key given as z32 (52 chars), hex or RFC 4648 base32. @throws {DecodeError} */
export function parseKeyAnyForm(text: string): PublicKey {
  if (text.length === 52) {
    try {
      return PublicKey.fromZ32(text);
    } catch {
      // maybe RFC 4648 base32
    }
  }
  return PublicKey.fromString(text);
}

/** The pkarr relay URL sdnet-relay serves for a relay URL (`<relay>/pkarr`). */
export function pkarrUrlOfRelay(relay: string | URL): string {
  const u = new URL(relay.toString());
  if (u.protocol === 'wss:') u.protocol = 'https:';
  else if (u.protocol === 'ws:') u.protocol = 'http:';
  u.pathname = '/pkarr';
  u.search = '';
  return u.toString();
}
