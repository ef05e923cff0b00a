/**
 * Identity vectors from shared/docs/iroh-wire.md Appendix A and §5.4 (values taken from the
 * real iroh 1.0.2 and its own snapshot tests).
 */
import { describe, expect, it } from 'vitest';
import {
  EndpointAddr,
  EndpointTicket,
  PublicKey,
  SecretKey,
  decodeEd25519Spki,
  encodeEd25519Spki,
  endpointIdFromTlsServerName,
  tlsServerName,
} from '../../src/identity/index.ts';
import { fromHex, toHex, utf8 } from '../../src/util/bytes.ts';
import { nobleCryptoProvider, nodeCryptoProvider } from '../../src/transport/crypto/index.ts';

const vectors = [
  {
    name: 'secret 00×32',
    secret: '00'.repeat(32),
    id: '3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29',
    short: '3b6a27bcce',
    z32: '8pinxxgqs41n4aididenw5apqp1urfmzdztr8jt4abrkdn435ewo',
    sni: '7dl2ff6emqi2qol3l382krodedij45bn3nh479hqo14a32qpr8kg.iroh.invalid',
  },
  {
    name: 'secret 2a×32',
    secret: '2a'.repeat(32),
    id: '197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61',
    short: '197f6b23e1',
    z32: 'df9sse9bp1nuftim3yhxiuk6w6r5hddsskjygpydux7esxjstioo',
    sni: '35vmm8v1di2j5hlbp0sfljauku4rs33mma906d03jft8mf9mhlgg.iroh.invalid',
  },
];

describe('iroh identity vectors (iroh-wire Appendix A)', () => {
  for (const v of vectors) {
    describe(v.name, () => {
      for (const provider of [nodeCryptoProvider, nobleCryptoProvider]) {
        it(`derives the EndpointId with the ${provider.name} provider`, () => {
          const key = SecretKey.fromBytes(fromHex(v.secret), provider);
          expect(key.public().toString()).toBe(v.id);
        });
      }
      it('prints the short form', () => {
        expect(PublicKey.fromString(v.id).fmtShort()).toBe(v.short);
      });
      it('encodes and parses z-base-32', () => {
        const id = PublicKey.fromString(v.id);
        expect(id.toZ32()).toBe(v.z32);
        expect(PublicKey.fromZ32(v.z32).equals(id)).toBe(true);
      });
      it('builds the TLS server name and reads it back', () => {
        const id = PublicKey.fromString(v.id);
        expect(tlsServerName(id)).toBe(v.sni);
        expect(endpointIdFromTlsServerName(v.sni).equals(id)).toBe(true);
      });
      it('encodes the 44-byte SPKI and decodes it', () => {
        const id = PublicKey.fromString(v.id);
        const spki = encodeEd25519Spki(id);
        expect(toHex(spki)).toBe(`302a300506032b6570032100${v.id}`);
        expect(decodeEd25519Spki(spki).equals(id)).toBe(true);
      });
    });
  }

  it('reproduces the relay handshake signature (secret 2a×32, challenge 00×16)', () => {
    for (const provider of [nodeCryptoProvider, nobleCryptoProvider]) {
      const message = provider.blake3DeriveKey('iroh-relay handshake v1 challenge signature', new Uint8Array(16));
      expect(toHex(message)).toBe('8105e7bd9963194e6d6d80225a3f1b071da3b6e65edcd12531e16233f33de9d6');
      const key = SecretKey.fromBytes(fromHex('2a'.repeat(32)), provider);
      const sig = key.sign(message);
      expect(sig.toString()).toBe(
        '661ffa2a241b3803f8d5f0e04fc3251c2b2785f8ed605b1d8b58825b92c3ba2b2b5d84d01c405f917f4fc602000442b0cbd867ab0143034f37bd089cb987d80b',
      );
      expect(key.public().verify(message, sig, provider)).toBe(true);
    }
  });

  it('parses the base32 form of an id in either case, as iroh FromStr does', () => {
    const id = PublicKey.fromString(vectors[0]!.id);
    const b32 = 'hnvcppgow2sc2yvdvdicu3ynonsteflxdxrehjr2ybekdc2z3iuq';
    expect(PublicKey.fromString(b32).equals(id)).toBe(true);
    expect(PublicKey.fromString(b32.toUpperCase()).equals(id)).toBe(true);
  });

  it('rejects upper-case hex ids, as iroh does', () => {
    expect(() => PublicKey.fromString(vectors[0]!.id.toUpperCase())).toThrow(/hex/);
  });
});

describe('iroh ticket vectors (iroh-wire §5.4)', () => {
  it('encodes the observed ticket for secret 00×32 byte for byte', () => {
    const id = SecretKey.fromBytes(new Uint8Array(32)).public();
    const addr = EndpointAddr.from({ id, relayUrls: ['http://127.0.0.1:3340'], directAddresses: ['127.0.0.1:1024', '[::1]:5'] });
    const ticket = new EndpointTicket(addr);
    expect(toHex(ticket.toBytes())).toBe(
      `00${id.toString()}03` +
        '0016' + toHex(utf8('http://127.0.0.1:3340/')) +
        '0100' + '7f000001' + '8008' +
        '0101' + '00000000000000000000000000000001' + '05',
    );
    expect(ticket.toString()).toBe(
      'endpointaa5wuj54z23killcuounaktpbvzwkmqvo4o6eq5ghlaerimllhncsayaczuhi5dqhixs6mjsg4xdalrqfyytumztgqyc6aiap4aaaamabaaqcaaaaaaaaaaaaaaaaaaaaaaaaaif',
    );
    expect(EndpointTicket.parse(ticket.toString()).addr.equals(addr)).toBe(true);
  });

  it("decodes iroh-tickets' own test vector", () => {
    const id = 'ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6';
    const bytes = fromHex(`00${id}02` + '0010' + '687474703a2f2f646572702e6d652e2f' + '0100' + '7f000001' + '8008');
    const ticket = EndpointTicket.fromBytes(bytes);
    expect(ticket.addr.toJSON()).toEqual({ id, relayUrls: ['http://derp.me./'], directAddresses: ['127.0.0.1:1024'] });
    expect(toHex(ticket.toBytes())).toBe(toHex(bytes));
  });
});

describe('Buffer inputs (whose slice() is a view)', () => {
  it('never modifies or aliases the caller’s bytes', () => {
    const id = SecretKey.fromBytes(fromHex('2a'.repeat(32))).public();
    const buf = Buffer.from(id.toBytes());
    const before = buf.toString('hex');
    const parsed = PublicKey.fromBytes(buf);
    expect(buf.toString('hex')).toBe(before);
    buf[0]! ^= 0xff;
    expect(parsed.equals(id)).toBe(true);
    const seed = Buffer.alloc(32, 7);
    const key = SecretKey.fromBytes(seed);
    seed.fill(0);
    expect(key.toBytes()).toEqual(new Uint8Array(32).fill(7));
  });
});
