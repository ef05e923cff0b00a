/**
 * RFC 9001 Appendix A reproduced byte for byte with our key derivation, AEAD and header
 * protection, with both crypto providers.
 */
import { describe, expect, it } from 'vitest';
import { nobleCryptoProvider, nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import {
  PacketKeys,
  decodePacketNumber,
  initialKeys,
  protectHeader,
  unprotectHeader,
} from '../../src/transport/quic/protection/packet-keys.ts';
import { retryIntegrityTag, verifyRetryIntegrity } from '../../src/transport/quic/protection/retry.ts';
import { TLS_CHACHA20_POLY1305_SHA256, nextQuicTrafficSecret } from '../../src/transport/quic/tls/index.ts';
import { fromHex, toHex } from '../../src/util/bytes.ts';
import * as V from '../vectors/rfc9001.ts';

const dcid = fromHex('8394c8f03e515708');

/** Protect `header ‖ payload` with `keys` the way a sender does; pnOffset = header.length - pnLength. */
function protect(keys: PacketKeys, header: Uint8Array, pnLength: number, pn: number, payload: Uint8Array): Uint8Array {
  const sealed = keys.seal(pn, header, payload);
  const packet = new Uint8Array(header.length + sealed.length);
  packet.set(header);
  packet.set(sealed, header.length);
  expect(protectHeader(packet, header.length - pnLength, pnLength, keys.header)).toBe(true);
  return packet;
}

describe.each([nodeCryptoProvider, nobleCryptoProvider])('RFC 9001 Appendix A ($name provider)', (provider) => {
  it('A.1 derives the Initial keys', () => {
    const client = initialKeys(provider, dcid, 'client');
    expect(toHex(client.local.secret)).toBe('c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea');
    expect(toHex(client.local.iv)).toBe('fa044b2f42a3fd3b46fb255c');
    expect(toHex(client.remote.secret)).toBe('3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b');
    expect(toHex(client.remote.iv)).toBe('0ac1493ca1905853b0bba03e');
    const server = initialKeys(provider, dcid, 'server');
    expect(toHex(server.local.secret)).toBe(toHex(client.remote.secret));
  });

  it('A.2 protects the client Initial byte for byte, and opens it again', () => {
    const keys = initialKeys(provider, dcid, 'client').local;
    const payload = new Uint8Array(1162);
    payload.set(fromHex(V.A2_CLIENT_CRYPTO_FRAME));
    const packet = protect(keys, fromHex(V.A2_CLIENT_HEADER), 4, 2, payload);
    expect(toHex(packet)).toBe(V.A2_CLIENT_PROTECTED);

    const received = fromHex(V.A2_CLIENT_PROTECTED);
    const serverKeys = initialKeys(provider, dcid, 'server').remote;
    const pnOffset = 18;
    const hp = unprotectHeader(received, pnOffset, serverKeys.header)!;
    expect(hp).toEqual({ pnLength: 4, truncatedPn: 2 });
    const header = received.subarray(0, pnOffset + hp.pnLength);
    expect(toHex(header)).toBe(V.A2_CLIENT_HEADER);
    expect(toHex(serverKeys.open(2, header, received.subarray(header.length))!)).toBe(toHex(payload));
  });

  it('A.3 protects the server Initial byte for byte', () => {
    const keys = initialKeys(provider, dcid, 'server').local;
    const packet = protect(keys, fromHex(V.A3_SERVER_HEADER), 2, 1, fromHex(V.A3_SERVER_PAYLOAD));
    expect(toHex(packet)).toBe(V.A3_SERVER_PROTECTED);
  });

  it('A.4 computes and checks the Retry integrity tag', () => {
    const retry = fromHex(V.A4_RETRY);
    expect(toHex(retryIntegrityTag(provider, dcid, retry.subarray(0, retry.length - 16)))).toBe(toHex(retry.subarray(retry.length - 16)));
    expect(verifyRetryIntegrity(provider, dcid, retry)).toBe(true);
    const bad = retry.slice();
    bad[10]! ^= 1;
    expect(verifyRetryIntegrity(provider, dcid, bad)).toBe(false);
  });

  it('A.5 protects the ChaCha20-Poly1305 short-header packet and derives "quic ku"', () => {
    const suite = TLS_CHACHA20_POLY1305_SHA256;
    const secret = fromHex(V.A5_SECRET);
    const keys = PacketKeys.fromSecret(provider, suite, secret);
    expect(toHex(keys.nonce(654360564))).toBe('e0459b3474bdd0e46d417eb0');
    const packet = protect(keys, fromHex('4200bff4'), 3, 654360564, fromHex('01'));
    expect(toHex(packet)).toBe(V.A5_PACKET);
    expect(toHex(nextQuicTrafficSecret(provider, suite, secret))).toBe(V.A5_KU);
    expect(toHex(keys.next().secret)).toBe(V.A5_KU);
    // Key update keeps the header-protection key (RFC 9001 §6).
    expect(keys.next().header).toBe(keys.header);
  });
});

describe('packet number decoding (RFC 9000 Appendix A.3)', () => {
  it('reproduces the RFC example', () => {
    expect(decodePacketNumber(0xa82f30ea, 0x9b32, 16)).toBe(0xa82f9b32);
  });
  it('handles wrap-around in both directions', () => {
    expect(decodePacketNumber(0xff, 0x01, 8)).toBe(0x101);
    expect(decodePacketNumber(0x100, 0xff, 8)).toBe(0xff);
    expect(decodePacketNumber(-1, 0, 8)).toBe(0);
    expect(decodePacketNumber(2 ** 40, 5, 32)).toBe(2 ** 40 + 5);
  });
});
