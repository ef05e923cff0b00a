/**
 * `Connection.exportKeyingMaterial` (RFC 8446 §7.5) over QUIC: both ends of a connection
 * agree, and different labels, contexts, lengths or connections give different values. The
 * exporter is checked against OpenSSL's in test/interop/openssl-tls.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { TlsClientSession } from '../../src/transport/quic/tls/index.ts';
import { toHex } from '../../src/util/bytes.ts';
import { Endpoint, EndpointAddr, SecretKey, type Connection } from '../../src/index.ts';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('exporter arguments', () => {
  it('rejects a label longer than 249 bytes; nothing to export before the handshake', () => {
    const session = new TlsClientSession({ provider: nodeCryptoProvider, certificate: { type: 'raw-public-key', secretKey: SecretKey.generate().toBytes() }, alpnProtocols: [new TextEncoder().encode('test/1')], expectedServerKey: SecretKey.generate().public().toBytes() });
    expect(() => session.exportKeyingMaterial('x'.repeat(250), new Uint8Array(0), 32)).toThrow(RangeError);
    expect(session.exportKeyingMaterial('EXPORTER-x', new Uint8Array(0), 32)).toBeUndefined();
  });
});

describe('Connection.exportKeyingMaterial over QUIC', () => {
  const ALPN = 'sdnet/exporter-test/0';
  async function pair(): Promise<{ client: Connection; server: Connection }> {
    const a = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'], alpns: [ALPN] });
    const b = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'] });
    cleanup.push(() => a.close({ graceMs: 50 }), () => b.close({ graceMs: 50 }));
    const accepted = (async () => {
      for await (const inc of a.accept()) return inc.accept();
      throw new Error('no incoming');
    })();
    const client = await b.connect(EndpointAddr.from({ id: a.id, directAddresses: a.boundSockets }), ALPN);
    return { client, server: await accepted };
  }

  it('both ends derive the same bytes; label, context and connection each change them', async () => {
    const one = await pair();
    const ctx = new TextEncoder().encode('ctx');
    const c1 = one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 32);
    const s1 = one.server.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 32);
    expect(toHex(c1)).toBe(toHex(s1));
    expect(toHex(one.client.exportKeyingMaterial('EXPORTER-sdnet-other', ctx, 32))).not.toBe(toHex(c1));
    expect(toHex(one.client.exportKeyingMaterial('EXPORTER-sdnet-test', new Uint8Array(0), 32))).not.toBe(toHex(c1));
    // The length is part of HKDF-Expand-Label's info: a shorter export is not a prefix.
    const short = one.server.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 16);
    expect(toHex(short)).toBe(toHex(one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 16)));
    expect(toHex(short)).not.toBe(toHex(c1.subarray(0, 16)));
    const two = await pair();
    expect(toHex(two.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 32))).not.toBe(toHex(c1));
    expect(() => one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 0)).toThrow(RangeError);
    expect(() => one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 255 * 48 + 1)).toThrow(RangeError);
  });
});
