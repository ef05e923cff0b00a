/**
 * QUIC packet protection (RFC 9001 §5): AEAD keys, IVs and header-protection keys derived
 * from a traffic secret, the Initial secrets of QUIC v1, packet sealing and opening, and
 * header protection.
 *
 * @module
 */
import type { Aead, CryptoProvider, HeaderProtection } from '../../crypto/provider.ts';
import { AEAD_TAG_LENGTH, HP_SAMPLE_LENGTH } from '../../crypto/provider.ts';
import { TLS_AES_128_GCM_SHA256, type CipherSuite } from '../tls/constants.ts';
import { hkdfExpandLabel, nextQuicTrafficSecret, quicKeyMaterial } from '../tls/key-schedule.ts';

/** RFC 9001 §5.2: initial_salt for QUIC version 1. */
export const INITIAL_SALT_V1 = Uint8Array.of(
  0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
);

/** Keys protecting packets in one direction at one encryption level. */
export class PacketKeys {
  readonly suite: CipherSuite;
  readonly secret: Uint8Array;
  readonly aead: Aead;
  readonly iv: Uint8Array;
  readonly header: HeaderProtection;
  readonly #provider: CryptoProvider;
  readonly #nonce = new Uint8Array(12);

  private constructor(provider: CryptoProvider, suite: CipherSuite, secret: Uint8Array, headerProtection?: HeaderProtection) {
    const m = quicKeyMaterial(provider, suite, secret);
    this.#provider = provider;
    this.suite = suite;
    this.secret = secret;
    this.aead = provider.aead(suite.aead, m.key);
    this.iv = m.iv;
    // RFC 9001 §6: a key update does not change the header-protection key.
    this.header = headerProtection ?? provider.headerProtection(suite.headerProtection, m.hp);
  }

  /** Keys from a traffic secret (RFC 9001 §5.1: "quic key", "quic iv", "quic hp"). */
  static fromSecret(provider: CryptoProvider, suite: CipherSuite, secret: Uint8Array): PacketKeys {
    return new PacketKeys(provider, suite, secret);
  }

  /** The keys after a key update (RFC 9001 §6.1, "quic ku"); header protection stays. */
  next(): PacketKeys {
    return new PacketKeys(this.#provider, this.suite, nextQuicTrafficSecret(this.#provider, this.suite, this.secret), this.header);
  }

  /**
   * RFC 9001 §5.3: nonce = IV XOR the packet number, left-padded to the IV length. With
   * multipath (draft-ietf-quic-multipath-21 §2.4) the 96 bits XORed in are path id (32, network
   * order) ‖ 0b00 ‖ packet number (62); path 0 gives the RFC 9001 nonce.
   */
  nonce(packetNumber: number, pathId = 0): Uint8Array {
    return packetNonce(this.iv, packetNumber, pathId, this.#nonce);
  }

  /** AEAD-seal `payload` with the packet header as associated data. Returns ciphertext ‖ tag. */
  seal(packetNumber: number, header: Uint8Array, payload: Uint8Array, pathId = 0): Uint8Array {
    return this.aead.seal(this.nonce(packetNumber, pathId), header, payload);
  }

  /** Seal `payload` into `out` at `offset` (it may be the payload's own place); returns bytes written. */
  sealInto(packetNumber: number, header: Uint8Array, payload: Uint8Array, out: Uint8Array, offset: number, pathId = 0): number {
    return this.aead.sealInto(this.nonce(packetNumber, pathId), header, payload, out, offset);
  }

  /** Open a packet payload; `null` if it does not authenticate. */
  open(packetNumber: number, header: Uint8Array, sealed: Uint8Array, pathId = 0): Uint8Array | null {
    return this.aead.open(this.nonce(packetNumber, pathId), header, sealed);
  }
}

/**
 * The AEAD nonce of a packet into `out` (12 bytes): RFC 9001 §5.3, IV XOR the packet number;
 * with multipath (draft-ietf-quic-multipath-21 §2.4) IV XOR (path id (32) ‖ 0b00 ‖ packet
 * number (62)). Path 0 gives the RFC 9001 nonce.
 */
export function packetNonce(iv: Uint8Array, packetNumber: number, pathId: number, out: Uint8Array = new Uint8Array(12)): Uint8Array {
  out.set(iv);
  let pn = packetNumber;
  for (let i = 11; i >= 4 && pn > 0; i--) {
    out[i]! ^= pn % 256;
    pn = Math.floor(pn / 256);
  }
  if (pathId !== 0) {
    out[0]! ^= (pathId >>> 24) & 0xff;
    out[1]! ^= (pathId >>> 16) & 0xff;
    out[2]! ^= (pathId >>> 8) & 0xff;
    out[3]! ^= pathId & 0xff;
  }
  return out;
}

/** Keys for both directions at one level, as this endpoint uses them. */
export interface DirectionalKeys {
  readonly local: PacketKeys;
  readonly remote: PacketKeys;
}

/**
 * The Initial keys (RFC 9001 §5.2): derived from the client's first Destination Connection
 * ID with the v1 salt; always AES-128-GCM with SHA-256.
 */
export function initialKeys(provider: CryptoProvider, clientDestinationCid: Uint8Array, side: 'client' | 'server'): DirectionalKeys {
  const suite = TLS_AES_128_GCM_SHA256;
  const initial = provider.hkdfExtract('sha256', INITIAL_SALT_V1, clientDestinationCid);
  const empty = new Uint8Array(0);
  const client = PacketKeys.fromSecret(provider, suite, hkdfExpandLabel(provider, suite, initial, 'client in', empty, 32));
  const server = PacketKeys.fromSecret(provider, suite, hkdfExpandLabel(provider, suite, initial, 'server in', empty, 32));
  return side === 'client' ? { local: client, remote: server } : { local: server, remote: client };
}

/** Offset of the header-protection sample: 4 bytes after the start of the packet number (RFC 9001 §5.4.2). */
export const SAMPLE_OFFSET = 4;

/**
 * Apply header protection in place (RFC 9001 §5.4.1): mask the low bits of the first byte
 * (4 for long headers, 5 for short) and the packet-number bytes.
 *
 * @returns false if the packet is too short to sample (the caller must pad)
 */
export function protectHeader(packet: Uint8Array, pnOffset: number, pnLength: number, hp: HeaderProtection): boolean {
  const sampleAt = pnOffset + SAMPLE_OFFSET;
  if (sampleAt + HP_SAMPLE_LENGTH > packet.length) return false;
  const mask = hp.mask(packet.subarray(sampleAt, sampleAt + HP_SAMPLE_LENGTH));
  const long = (packet[0]! & 0x80) !== 0;
  packet[0]! ^= mask[0]! & (long ? 0x0f : 0x1f);
  for (let i = 0; i < pnLength; i++) packet[pnOffset + i]! ^= mask[1 + i]!;
  return true;
}

/**
 * Remove header protection in place (RFC 9001 §5.4.1) and read the truncated packet number.
 *
 * @returns the packet-number length and value, or undefined if the packet is too short
 */
export function unprotectHeader(packet: Uint8Array, pnOffset: number, hp: HeaderProtection): { pnLength: number; truncatedPn: number } | undefined {
  const sampleAt = pnOffset + SAMPLE_OFFSET;
  if (sampleAt + HP_SAMPLE_LENGTH > packet.length) return undefined;
  const mask = hp.mask(packet.subarray(sampleAt, sampleAt + HP_SAMPLE_LENGTH));
  const long = (packet[0]! & 0x80) !== 0;
  packet[0]! ^= mask[0]! & (long ? 0x0f : 0x1f);
  const pnLength = (packet[0]! & 0x03) + 1;
  if (pnOffset + pnLength > packet.length) return undefined;
  let truncatedPn = 0;
  for (let i = 0; i < pnLength; i++) {
    packet[pnOffset + i]! ^= mask[1 + i]!;
    truncatedPn = truncatedPn * 256 + packet[pnOffset + i]!;
  }
  return { pnLength, truncatedPn };
}

/** Tag length added by every AEAD here. */
export const PACKET_TAG_LENGTH = AEAD_TAG_LENGTH;

/**
 * Reconstruct a full packet number from its truncated form (RFC 9000 §17.1, Appendix A.3).
 */
export function decodePacketNumber(largestPn: number, truncatedPn: number, pnBits: number): number {
  const expected = largestPn + 1;
  const win = 2 ** pnBits;
  const hwin = win / 2;
  // candidate = (expected & ~mask) | truncated, with arithmetic safe beyond 2^32.
  const candidate = expected - (expected % win) + truncatedPn;
  if (candidate <= expected - hwin && candidate < 2 ** 62 - win) return candidate + win;
  if (candidate > expected + hwin && candidate >= win) return candidate - win;
  return candidate;
}
