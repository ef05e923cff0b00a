/**
 * Property tests for the TLS engine: message codecs round-trip, and random mutations of any
 * message of a live handshake end in a TLS alert (or a handshake that still completes when
 * the mutation was harmless) — never another exception.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TlsAlertError } from '../../src/transport/quic/tls/index.ts';
import {
  decodeCertificate,
  decodeCertificateRequest,
  decodeCertificateVerify,
  decodeClientHello,
  decodeEncryptedExtensions,
  decodeServerHello,
  encodeCertificate,
  encodeCertificateRequest,
  encodeCertificateVerify,
  encodeClientHello,
  encodeEncryptedExtensions,
  encodeServerHello,
} from '../../src/transport/quic/tls/messages.ts';
import * as X from '../../src/transport/quic/tls/extensions.ts';
import { toHex } from '../../src/util/bytes.ts';
import { fcParams } from '../helpers/seed.ts';
import { pump, rawPair } from '../helpers/tls-pair.ts';

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const extension = fc.record({ type: fc.integer({ min: 0, max: 0xffff }), data: bytes(0, 40) });
const extensions = fc.uniqueArray(extension, { selector: (e) => e.type, maxLength: 8 });
const u16 = fc.integer({ min: 0, max: 0xffff });

/** encode → decode → encode is the identity on bytes; the decoded value equals the input. */
function roundTrip<T>(arb: fc.Arbitrary<T>, encode: (v: T) => Uint8Array, decode: (body: Uint8Array) => T, name: string) {
  it(name, () => {
    fc.assert(
      fc.property(arb, (value) => {
        const wire = encode(value);
        const back = decode(wire.subarray(4));
        expect(toHex(encode(back))).toBe(toHex(wire));
      }),
      fcParams(`tls codec ${name}`, 300),
    );
  });
}

describe('TLS message codecs round-trip', () => {
  roundTrip(
    fc.record({ random: bytes(32, 32), sessionId: bytes(0, 32), cipherSuites: fc.array(u16, { minLength: 1, maxLength: 10 }), compressionMethods: bytes(1, 3), extensions }),
    encodeClientHello,
    (b) => {
      const { legacyVersion: _v, ...ch } = decodeClientHello(b);
      return ch;
    },
    'ClientHello',
  );
  roundTrip(
    fc.record({ random: bytes(32, 32), sessionIdEcho: bytes(0, 32), cipherSuite: u16, compressionMethod: fc.integer({ min: 0, max: 255 }), extensions }),
    encodeServerHello,
    (b) => {
      const { legacyVersion: _v, ...sh } = decodeServerHello(b);
      return sh;
    },
    'ServerHello',
  );
  roundTrip(fc.record({ extensions }), encodeEncryptedExtensions, decodeEncryptedExtensions, 'EncryptedExtensions');
  roundTrip(fc.record({ context: bytes(0, 10), extensions }), encodeCertificateRequest, decodeCertificateRequest, 'CertificateRequest');
  roundTrip(
    fc.record({ context: bytes(0, 4), entries: fc.array(fc.record({ data: bytes(1, 60), extensions }), { maxLength: 5 }) }),
    encodeCertificate,
    (b) => decodeCertificate(b, 10),
    'Certificate',
  );
  roundTrip(fc.record({ scheme: u16, signature: bytes(0, 80) }), encodeCertificateVerify, decodeCertificateVerify, 'CertificateVerify');

  it('extension bodies', () => {
    fc.assert(
      fc.property(fc.array(u16, { minLength: 1, maxLength: 20 }), fc.array(bytes(1, 20), { minLength: 1, maxLength: 5 }), fc.array(fc.record({ group: u16, keyExchange: bytes(1, 40) }), { maxLength: 4 }), (list, names, shares) => {
        expect(X.decodeU16List(X.encodeU16List(list), 'l')).toEqual(list);
        expect(X.decodeSupportedVersionsClient(X.encodeSupportedVersionsClient(list.slice(0, 100)))).toEqual(list.slice(0, 100));
        expect(X.decodeAlpn(X.encodeAlpn(names)).map(toHex)).toEqual(names.map(toHex));
        expect(X.decodeKeyShareClient(X.encodeKeyShareClient(shares)).map((s) => [s.group, toHex(s.keyExchange)])).toEqual(shares.map((s) => [s.group, toHex(s.keyExchange)]));
        expect(X.decodeCertTypeList(X.encodeCertTypeList([2, 0]))).toEqual([2, 0]);
      }),
      fcParams('tls extension bodies', 300),
    );
  });
});

describe('mutated handshake messages end in an alert, never another exception', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bits: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('extend' as const), extra: bytes(1, 8) }),
    fc.record({ kind: fc.constant('length' as const), delta: fc.integer({ min: -8, max: 8 }) }),
    fc.record({ kind: fc.constant('type' as const), type: fc.integer({ min: 0, max: 255 }) }),
  );

  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

  function mutate(data: Uint8Array, m: Mutation): Uint8Array {
    switch (m.kind) {
      case 'flip': {
        const c = data.slice();
        c[m.at % c.length]! ^= m.bits;
        return c;
      }
      case 'truncate':
        return data.slice(0, m.at % data.length);
      case 'extend':
        return Uint8Array.from([...data, ...m.extra]);
      case 'length': {
        const c = data.slice();
        const len = Math.max(0, ((c[1]! << 16) | (c[2]! << 8) | c[3]!) + m.delta);
        c[1] = len >> 16;
        c[2] = (len >> 8) & 0xff;
        c[3] = len & 0xff;
        return c;
      }
      case 'type': {
        const c = data.slice();
        c[0] = m.type;
        return c;
      }
    }
  }

  it('for every message of the handshake (CH, SH, EE, CR, Cert, CV, Fin both ways)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9 }), mutation, fc.boolean(), (target, m, hrr) => {
        const { client, server } = rawPair({ client: { sendEmptyKeyShare: hrr } });
        const result = pump(client, server, (_from, _level, data, index) => (index === target ? mutate(data, m) : data));
        if (result.failure) {
          const err = result.failure.error;
          if (!(err instanceof TlsAlertError)) throw new Error(`not an alert: ${String(err)}`, { cause: err });
          expect(err.alert).toBeGreaterThan(0);
        }
      }),
      fcParams('tls mutations', 2000),
    );
  });

  it('random bytes fed to a fresh server or a waiting client', () => {
    fc.assert(
      fc.property(bytes(0, 400), fc.constantFrom('initial' as const, 'handshake' as const, 'application' as const), fc.boolean(), (junk, level, toServer) => {
        const { client, server } = rawPair();
        try {
          (toServer ? server : client).handleHandshakeData(level, junk);
        } catch (err) {
          if (!(err instanceof TlsAlertError)) throw new Error(`not an alert: ${String(err)}`, { cause: err });
        }
      }),
      fcParams('tls random bytes', 3000),
    );
  });
});
