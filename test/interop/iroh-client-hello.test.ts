/**
 * A real iroh 1.0.2 endpoint (`@number0/iroh`) dials a UDP socket owned by this test. We
 * remove the Initial packet protection with our keys, reassemble the CRYPTO stream, parse
 * the ClientHello with our codecs, and check iroh's TLS profile and transport parameters
 * (shared/docs/iroh-wire.md §2, §3.2).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import iroh from '@number0/iroh';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { initialKeys, unprotectHeader } from '../../src/transport/quic/protection/packet-keys.ts';
import { parseHeader } from '../../src/transport/quic/wire/header.ts';
import { ByteReader } from '../../src/transport/quic/wire/reader.ts';
import { decodeTransportParameters } from '../../src/transport/quic/wire/transport-params.ts';
import { decodeClientHello, HandshakeReassembler } from '../../src/transport/quic/tls/messages.ts';
import { ExtensionType, NamedGroup, SignatureScheme } from '../../src/transport/quic/tls/index.ts';
import { decodeAlpn, decodeCertTypeList, decodeKeyShareClient, decodeServerName, decodeSupportedVersionsClient, decodeU16List } from '../../src/transport/quic/tls/extensions.ts';
import { SecretKey, tlsServerName } from '../../src/identity/index.ts';
import { toHex } from '../../src/util/bytes.ts';

const ALPN = 'sdnet/probe/1';
const target = SecretKey.fromBytes(new Uint8Array(32).fill(0x42));
let captured: { hello: ReturnType<typeof decodeClientHello>; dcid: Uint8Array; scid: Uint8Array; firstDatagramLength: number } | undefined;

beforeAll(async () => {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const port = socket.address().port;
  const crypto = new Map<number, Uint8Array>();
  let firstDatagramLength = 0;
  let dcid: Uint8Array | undefined;
  let scid: Uint8Array | undefined;
  const reassembler = new HandshakeReassembler(65536);
  let nextOffset = 0;
  const done = new Promise<Uint8Array>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ClientHello from iroh within 20 s')), 20_000);
    let resolved = false;
    socket.on('message', (datagram) => {
      // After the ClientHello, iroh's later packets (its CONNECTION_CLOSE on shutdown) are not needed.
      if (resolved) return;
      let offset = 0;
      while (offset < datagram.length) {
        const h = parseHeader(datagram, offset, 0);
        if (h.form !== 'long' || h.type !== 'initial') break;
        firstDatagramLength ||= datagram.length;
        dcid ??= h.dcid;
        scid ??= h.scid;
        // The client's Initial keys come from the DCID of its first Initial (RFC 9001 §5.2).
        const keys = initialKeys(nodeCryptoProvider, dcid, 'server').remote;
        const packet = datagram.subarray(h.start, h.end);
        const pnOffset = h.pnOffset - h.start;
        const hp = unprotectHeader(packet, pnOffset, keys.header)!;
        const header = packet.subarray(0, pnOffset + hp.pnLength);
        const payload = keys.open(hp.truncatedPn, header, packet.subarray(header.length));
        if (payload === null) throw new Error('iroh Initial did not decrypt with our keys');
        const r = new ByteReader(payload);
        while (!r.done) {
          const type = r.u8();
          if (type === 0x00 || type === 0x01) continue; // PADDING, PING
          if (type !== 0x06) throw new Error(`unexpected frame 0x${type.toString(16)} in iroh's first Initial`);
          const off = r.varint();
          const len = r.varint();
          crypto.set(off, r.bytes(len).slice());
        }
        offset = h.end;
      }
      for (let chunk = crypto.get(nextOffset); chunk !== undefined; chunk = crypto.get(nextOffset)) {
        crypto.delete(nextOffset);
        reassembler.push(chunk);
        nextOffset += chunk.length;
      }
      const msg = reassembler.next();
      if (msg) {
        resolved = true;
        clearTimeout(timer);
        resolve(msg.body);
      }
    });
  });
  const builder = iroh.Endpoint.builder();
  iroh.presetMinimal(builder);
  builder.alpns([Array.from(new TextEncoder().encode(ALPN))]);
  builder.bindAddr('127.0.0.1:0');
  const endpoint = await builder.bind();
  const attempt = endpoint
    .connect(new iroh.EndpointAddr(iroh.EndpointId.fromString(target.public().toString()), null, [`127.0.0.1:${port}`]), Array.from(new TextEncoder().encode(ALPN)))
    .catch(() => undefined);
  try {
    const body = await done;
    captured = { hello: decodeClientHello(body), dcid: dcid!, scid: scid!, firstDatagramLength };
  } finally {
    await endpoint.close();
    await attempt;
    socket.close();
  }
}, 60_000);

function ext(type: number): Uint8Array {
  const e = captured!.hello.extensions.find((x) => x.type === type);
  expect(e, `extension ${type}`).toBeDefined();
  return e!.data;
}

describe("a real iroh ClientHello, decrypted and parsed by us", () => {
  it('arrives in a padded 1200-byte Initial with a 20-byte DCID and 8-byte SCID (iroh-wire §3.1)', () => {
    expect(captured).toBeDefined();
    expect(captured!.firstDatagramLength).toBeGreaterThanOrEqual(1200);
    expect(captured!.dcid.length).toBe(20);
    expect(captured!.scid.length).toBe(8);
  });

  it('offers TLS 1.3 only, with no session id (no compatibility mode in QUIC)', () => {
    expect(decodeSupportedVersionsClient(ext(ExtensionType.supported_versions))).toEqual([0x0304]);
    expect(captured!.hello.sessionId.length).toBe(0);
  });

  it('offers our ALPN', () => {
    expect(decodeAlpn(ext(ExtensionType.application_layer_protocol_negotiation)).map((a) => new TextDecoder().decode(a))).toEqual([ALPN]);
  });

  it('offers raw public keys both ways: extensions 19 and 20 = [2]', () => {
    expect(decodeCertTypeList(ext(ExtensionType.client_certificate_type))).toEqual([2]);
    expect(decodeCertTypeList(ext(ExtensionType.server_certificate_type))).toEqual([2]);
  });

  it('signs with Ed25519 (0x0807) only', () => {
    expect(decodeU16List(ext(ExtensionType.signature_algorithms), 'signature_algorithms')).toEqual([SignatureScheme.ed25519]);
  });

  it('sends one x25519 key share of 32 bytes', () => {
    const shares = decodeKeyShareClient(ext(ExtensionType.key_share));
    expect(shares.map((s) => [s.group, s.keyExchange.length])).toEqual([[NamedGroup.x25519, 32]]);
    expect(decodeU16List(ext(ExtensionType.supported_groups), 'supported_groups')).toContain(NamedGroup.x25519);
  });

  it('names the dialled EndpointId in SNI as <base32hex>.iroh.invalid', () => {
    expect(decodeServerName(ext(ExtensionType.server_name))).toBe(tlsServerName(target.public()));
  });

  it('carries the transport parameters iroh-wire §3.2 lists', () => {
    const tp = decodeTransportParameters(ext(ExtensionType.quic_transport_parameters), 'client');
    expect(tp).toMatchObject({
      maxIdleTimeout: 30000,
      maxUdpPayloadSize: 1472,
      initialMaxData: Number.MAX_SAFE_INTEGER, // 2^62 − 1, clamped
      initialMaxStreamDataBidiLocal: 1_250_000,
      initialMaxStreamDataBidiRemote: 1_250_000,
      initialMaxStreamDataUni: 1_250_000,
      initialMaxStreamsBidi: 100,
      initialMaxStreamsUni: 100,
      activeConnectionIdLimit: 5,
      maxDatagramFrameSize: 65535,
    });
    expect(toHex(tp.initialSourceConnectionId!)).toBe(toHex(captured!.scid));
    // The multipath, n0 NAT-traversal and min_ack_delay parameters are present (and ignored by our decoder).
    const ids = rawParameterIds(ext(ExtensionType.quic_transport_parameters));
    expect(ids).toContain(0x3en);
    expect(ids).toContain(0x3d7f91120401n);
    expect(ids).toContain(0xff04de1bn);
  });
});

function rawParameterIds(bytes: Uint8Array): bigint[] {
  const ids: bigint[] = [];
  let pos = 0;
  const varint = (): bigint => {
    const len = 1 << (bytes[pos]! >> 6);
    let v = BigInt(bytes[pos]! & 0x3f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(bytes[pos + i]!);
    pos += len;
    return v;
  };
  while (pos < bytes.length) {
    ids.push(varint());
    const length = Number(varint());
    pos += length;
  }
  return ids;
}
