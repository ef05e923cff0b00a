/**
 * Property tests for every identity/addressing codec: round-trips, and random input that
 * yields only the documented error type.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EndpointAddr,
  EndpointTicket,
  KeyFileError,
  PublicKey,
  RelayUrl,
  SecretKey,
  Signature,
  SocketAddr,
  decodeEd25519Spki,
  encodeEd25519Spki,
  endpointIdFromTlsServerName,
  parseSecretKeyFile,
  formatSecretKey,
  tlsServerName,
} from '../../src/identity/index.ts';
import { BASE32_HEX_LOWER, BASE32_RFC4648_LOWER, BASE32_Z, decodeBase32, encodeBase32 } from '../../src/util/base32.ts';
import { fromHex, toHex } from '../../src/util/bytes.ts';
import { DecodeError } from '../../src/util/errors.ts';
import { fcParams } from '../helpers/seed.ts';
import { endpointAddr, endpointId, relayUrlText, secretBytes, socketAddr } from '../helpers/arbitraries.ts';

/** Run `decode`; pass if it returns or throws `errorType`, fail on any other exception. */
function onlyThrows(decode: () => unknown, errorType: new (...args: never[]) => Error = DecodeError): void {
  try {
    decode();
  } catch (err) {
    if (!(err instanceof errorType)) throw new Error(`Expected only ${errorType.name}, got ${String(err)}`, { cause: err });
  }
}

const FUZZ_RUNS = 10_000;
const randomBytes = fc.uint8Array({ maxLength: 300 });
/** Random bytes, and valid encodings with a few bytes flipped, cut or appended. */
function perturbed(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    randomBytes,
    fc.tuple(valid, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([b, i, x]) => {
      const c = b.slice();
      if (c.length > 0) c[i % c.length]! ^= x;
      return c;
    }),
    fc.tuple(valid, fc.nat()).map(([b, n]) => b.subarray(0, n % (b.length + 1))),
    fc.tuple(valid, fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([b, extra]) => Uint8Array.from([...b, ...extra])),
  );
}
const randomText = fc.oneof(fc.string({ maxLength: 120 }), fc.string({ unit: 'binary', maxLength: 80 }), fc.stringMatching(/^[0-9a-z:.[\]%/-]{0,70}$/));

describe('round trips', () => {
  it('PublicKey: bytes, hex, base32 and z-base-32', () => {
    fc.assert(
      fc.property(endpointId, (id) => {
        expect(PublicKey.fromBytes(id.toBytes()).equals(id)).toBe(true);
        expect(PublicKey.fromString(id.toString()).equals(id)).toBe(true);
        expect(PublicKey.fromString(encodeBase32(id.bytes, BASE32_RFC4648_LOWER)).equals(id)).toBe(true);
        expect(PublicKey.fromZ32(id.toZ32()).equals(id)).toBe(true);
        expect(endpointIdFromTlsServerName(tlsServerName(id)).equals(id)).toBe(true);
        expect(decodeEd25519Spki(encodeEd25519Spki(id)).equals(id)).toBe(true);
      }),
      fcParams('PublicKey round trip', 300),
    );
  });

  it('SecretKey: bytes, string and key file', () => {
    fc.assert(
      fc.property(secretBytes, (b) => {
        const key = SecretKey.fromBytes(b);
        expect(toHex(SecretKey.fromString(toHex(b)).toBytes())).toBe(toHex(b));
        expect(parseSecretKeyFile(formatSecretKey(key)).public().equals(key.public())).toBe(true);
      }),
      fcParams('SecretKey round trip', 200),
    );
  });

  it('base32 in all three alphabets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(BASE32_RFC4648_LOWER, BASE32_HEX_LOWER, BASE32_Z), (b, alphabet) => {
        expect(toHex(decodeBase32(encodeBase32(b, alphabet), alphabet))).toBe(toHex(b));
      }),
      fcParams('base32 round trip'),
    );
  });

  it('SocketAddr: text', () => {
    fc.assert(
      fc.property(socketAddr, (a) => {
        expect(SocketAddr.parse(a.toString()).equals(a)).toBe(true);
      }),
      fcParams('SocketAddr round trip', 1000),
    );
  });

  it('RelayUrl: normalisation is idempotent', () => {
    fc.assert(
      fc.property(relayUrlText, (text) => {
        const url = RelayUrl.parse(text);
        expect(RelayUrl.parse(url.toString()).toString()).toBe(url.toString());
        expect(url.toString()).toBe(new URL(text).href);
      }),
      fcParams('RelayUrl round trip'),
    );
  });

  it('EndpointAddr and EndpointTicket: bytes and string', () => {
    fc.assert(
      fc.property(endpointAddr, (addr) => {
        expect(EndpointAddr.fromBytes(addr.toBytes()).equals(addr)).toBe(true);
        const ticket = new EndpointTicket(addr);
        const parsed = EndpointTicket.parse(ticket.toString());
        expect(parsed.addr.equals(addr)).toBe(true);
        expect(parsed.toString()).toBe(ticket.toString());
        // iroh upper-cases before decoding, so an upper-case body parses too.
        const upper = `endpoint${ticket.toString().slice('endpoint'.length).toUpperCase()}`;
        expect(EndpointTicket.parse(upper).addr.equals(addr)).toBe(true);
      }),
      fcParams('EndpointAddr round trip', 500),
    );
  });
});

describe('10k random inputs per decoder yield only the documented error', () => {
  const validAddrBytes = endpointAddr.map((a) => a.toBytes());
  const validTicketBytes = endpointAddr.map((a) => new EndpointTicket(a).toBytes());
  const cases: Array<[string, fc.Arbitrary<unknown>, (input: never) => unknown]> = [
    ['PublicKey.fromBytes', fc.oneof(randomBytes, fc.uint8Array({ minLength: 32, maxLength: 32 })), (b: Uint8Array) => PublicKey.fromBytes(b)],
    ['PublicKey.fromString', randomText, (s: string) => PublicKey.fromString(s)],
    ['PublicKey.fromZ32', fc.oneof(randomText, fc.stringMatching(/^[ybndrfg8ejkmcpqxot1uwisza345h769]{52}$/)), (s: string) => PublicKey.fromZ32(s)],
    ['Signature.fromBytes', randomBytes, (b: Uint8Array) => Signature.fromBytes(b)],
    ['SecretKey.fromString', randomText, (s: string) => SecretKey.fromString(s)],
    ['decodeEd25519Spki', perturbed(endpointId.map(encodeEd25519Spki)), (b: Uint8Array) => decodeEd25519Spki(b)],
    ['endpointIdFromTlsServerName', fc.oneof(randomText, endpointId.map(tlsServerName).map((s) => s.slice(1) + '0')), (s: string) => endpointIdFromTlsServerName(s)],
    ['SocketAddr.parse', fc.oneof(randomText, socketAddr.map(String).map((s) => s.replace(/\d$/, '9x'))), (s: string) => SocketAddr.parse(s)],
    ['RelayUrl.parse', randomText, (s: string) => RelayUrl.parse(s)],
    ['decodeBase32', randomText, (s: string) => decodeBase32(s, BASE32_RFC4648_LOWER)],
    ['fromHex', randomText, (s: string) => fromHex(s)],
    ['EndpointAddr.fromBytes', perturbed(validAddrBytes), (b: Uint8Array) => EndpointAddr.fromBytes(b)],
    ['EndpointTicket.fromBytes', perturbed(validTicketBytes), (b: Uint8Array) => EndpointTicket.fromBytes(b)],
    [
      'EndpointTicket.parse',
      fc.oneof(randomText, perturbed(validTicketBytes).map((b) => `endpoint${encodeBase32(b, BASE32_RFC4648_LOWER)}`)),
      (s: string) => EndpointTicket.parse(s),
    ],
  ];
  for (const [name, arb, decode] of cases) {
    it(name, () => {
      fc.assert(
        fc.property(arb, (input) => onlyThrows(() => decode(input as never))),
        fcParams(`fuzz ${name}`, FUZZ_RUNS),
      );
    });
  }
  it('parseSecretKeyFile (KeyFileError only)', () => {
    fc.assert(
      fc.property(randomText, (s) => onlyThrows(() => parseSecretKeyFile(s), KeyFileError)),
      fcParams('fuzz parseSecretKeyFile', FUZZ_RUNS),
    );
  });
});
