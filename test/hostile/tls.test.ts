/**
 * Hostile TLS inside QUIC and hostile transport parameters (reliability.md §5.B): a raw
 * peer whose ClientHello, transport parameters or Handshake flight are rewritten. A TLS alert
 * becomes CRYPTO_ERROR 0x100 + alert (RFC 9001 §4.8); transport-parameter violations are
 * TRANSPORT_PARAMETER_ERROR (RFC 9000 §7.4, §18.2).
 */
import { describe, expect, it } from 'vitest';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { ExtensionType, HandshakeType, NamedGroup } from '../../src/transport/quic/tls/constants.ts';
import { encodeKeyShareClient } from '../../src/transport/quic/tls/extensions.ts';
import { encodeCertificate, type ClientHello } from '../../src/transport/quic/tls/messages.ts';
import { DEFAULT_TRANSPORT_PARAMETERS, encodeTransportParameters, type TransportParameters } from '../../src/transport/quic/wire/transport-params.ts';
import { Arena, expectClosedWith } from './arena.ts';
import { F, cat, varint, type RawPeerOptions } from './raw-peer.ts';

const CRYPTO_ERROR = (alert: number) => 0x100 + alert;
const NO_APPLICATION_PROTOCOL = CRYPTO_ERROR(120);
const MISSING_EXTENSION = CRYPTO_ERROR(109);
const PROTOCOL_VERSION = CRYPTO_ERROR(70);
const ILLEGAL_PARAMETER = CRYPTO_ERROR(47);
const DECRYPT_ERROR = CRYPTO_ERROR(51);
const CERTIFICATE_REQUIRED = CRYPTO_ERROR(116);

const rand = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** A raw peer sends its first Initial; returns the server's connection after its answer. */
function firstFlight(options: Partial<RawPeerOptions>) {
  const arena = new Arena();
  const peer = arena.peer('attacker', options);
  arena.deliver('attacker', peer.initialDatagram());
  const conn = arena.accepted[0];
  if (conn === undefined) throw new Error('the server kept no state for the Initial');
  arena.settle();
  return { arena, peer, conn };
}

const withoutExtension = (type: number) => (ch: ClientHello): ClientHello => ({ ...ch, extensions: ch.extensions.filter((e) => e.type !== type) });
const replaceExtension = (type: number, data: Uint8Array) => (ch: ClientHello): ClientHello => ({ ...ch, extensions: ch.extensions.map((e) => (e.type === type ? { type, data } : e)) });

/** Valid transport parameters for our SCID (only non-default values are encoded), then `extra` raw bytes. */
const paramsThen = (overrides: Partial<TransportParameters>, extra: Uint8Array) => (scid: Uint8Array) =>
  cat(encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, maxIdleTimeout: 30_000, initialMaxData: 1 << 20, initialSourceConnectionId: scid, ...overrides }), extra);

describe('§5.B TLS handshake abuse', () => {
  it('ClientHello without ALPN → CRYPTO_ERROR 0x178 (no_application_protocol)', () => {
    const { arena, peer, conn } = firstFlight({ editClientHello: withoutExtension(ExtensionType.application_layer_protocol_negotiation) });
    expectClosedWith(arena, conn, peer, NO_APPLICATION_PROTOCOL);
  });

  it('ClientHello offering only an unknown ALPN → CRYPTO_ERROR 0x178 (no_application_protocol)', () => {
    const { arena, peer, conn } = firstFlight({ alpn: new TextEncoder().encode('not-this/1') });
    expectClosedWith(arena, conn, peer, NO_APPLICATION_PROTOCOL);
  });

  it('ClientHello without quic_transport_parameters → CRYPTO_ERROR 0x16d (missing_extension)', () => {
    const { arena, peer, conn } = firstFlight({ rawParams: () => null });
    expectClosedWith(arena, conn, peer, MISSING_EXTENSION);
  });

  it('ClientHello without TLS 1.3 in supported_versions → CRYPTO_ERROR 0x146 (protocol_version)', () => {
    const { arena, peer, conn } = firstFlight({ editClientHello: replaceExtension(ExtensionType.supported_versions, Uint8Array.of(2, 0x03, 0x03)) });
    expectClosedWith(arena, conn, peer, PROTOCOL_VERSION);
  });

  it('ClientHello with an all-zero X25519 key share → CRYPTO_ERROR 0x12f (illegal_parameter)', () => {
    const share = encodeKeyShareClient([{ group: NamedGroup.x25519, keyExchange: new Uint8Array(32) }]);
    const { arena, peer, conn } = firstFlight({ editClientHello: replaceExtension(ExtensionType.key_share, share) });
    expectClosedWith(arena, conn, peer, ILLEGAL_PARAMETER);
  });

  it('CRYPTO in the first Initial far beyond the crypto buffer → CRYPTO_BUFFER_EXCEEDED', () => {
    const arena = new Arena();
    const peer = arena.peer();
    arena.deliver('attacker', peer.initialDatagram({ before: [F.crypto(10_000_000, rand(10))] }));
    const conn = arena.accepted[0]!;
    expect(conn).toBeDefined();
    arena.pump();
    expectClosedWith(arena, conn, peer, E.CRYPTO_BUFFER_EXCEEDED, 0x06);
  });

  it('a handshake message declaring a 16 MiB body → a CRYPTO_ERROR close, nothing that size buffered', () => {
    const arena = new Arena();
    const peer = arena.peer();
    peer.spaces.initial.cryptoOut.splice(0, 1, cat(HandshakeType.client_hello, 0xff, 0xff, 0xff, rand(200)));
    arena.deliver('attacker', peer.initialDatagram());
    const conn = arena.accepted[0]!;
    arena.pump();
    const code = conn.closeError?.transportCode ?? 0;
    expect(code >= 0x100 && code <= 0x1ff, `closed with ${conn.closeError?.message}`).toBe(true);
    expect(peer.closes[0]?.code).toBe(code);
    expect(arena.internalErrors).toBe(0);
  });

  it('a client Finished with a flipped bit → CRYPTO_ERROR 0x133 (decrypt_error)', () => {
    const { arena, peer, conn } = firstFlight({
      editHandshakeFlight: (m) => (m[0] === HandshakeType.finished ? cat(m.subarray(0, m.length - 1), m[m.length - 1]! ^ 1) : m),
    });
    expectClosedWith(arena, conn, peer, DECRYPT_ERROR);
  });

  it('a client CertificateVerify with a bad signature → CRYPTO_ERROR 0x133 (decrypt_error)', () => {
    const { arena, peer, conn } = firstFlight({
      editHandshakeFlight: (m) => (m[0] === HandshakeType.certificate_verify ? cat(m.subarray(0, m.length - 1), m[m.length - 1]! ^ 1) : m),
    });
    expectClosedWith(arena, conn, peer, DECRYPT_ERROR);
  });

  it('an empty client Certificate → CRYPTO_ERROR 0x174 (certificate_required)', () => {
    const { arena, peer, conn } = firstFlight({
      editHandshakeFlight: (m) => (m[0] === HandshakeType.certificate ? encodeCertificate({ context: new Uint8Array(0), entries: [] }) : m),
    });
    expectClosedWith(arena, conn, peer, CERTIFICATE_REQUIRED);
  });

  it('a client that stalls mid-handshake: the handshake timeout frees all its state (§5.B.6)', () => {
    const arena = new Arena({ settings: { handshakeTimeout: 2_000 } });
    const peer = arena.peer('attacker', { autoFinish: false });
    arena.deliver('attacker', peer.initialDatagram());
    arena.pump();
    expect(arena.server.connections.length).toBe(1);
    arena.advance(10_000);
    expect(arena.accepted[0]!.state).toBe('closed');
    expect(arena.server.connections.length).toBe(0);
    expect(arena.server.pollTimeout()).toBeUndefined();
    expect(arena.internalErrors).toBe(0);
  });
});

describe('§5.B.5 transport parameters from a hostile client → TRANSPORT_PARAMETER_ERROR', () => {
  const cases: [string, Partial<RawPeerOptions>][] = [
    ['max_udp_payload_size 1199 (below 1200)', { params: { maxUdpPayloadSize: 1199 } }],
    ['ack_delay_exponent 21 (above 20)', { params: { ackDelayExponent: 21 } }],
    ['max_ack_delay 2^14', { params: { maxAckDelay: 2 ** 14 } }],
    ['active_connection_id_limit 1 (below 2)', { params: { activeConnectionIdLimit: 1 } }],
    ['initial_max_streams_bidi 2^60 + 1', { rawParams: paramsThen({}, cat(varint(0x08), varint(8), varint(2n ** 60n + 1n))) }],
    ['a duplicated parameter (max_idle_timeout twice)', { rawParams: paramsThen({}, cat(varint(0x01), varint(1), varint(5))) }],
    ['a truncated varint inside a parameter (the RUSTSEC-2026-0037 crash)', { rawParams: paramsThen({}, cat(varint(0x0b), varint(1), 0x40)) }],
    ['a parameter length running past the extension', { rawParams: paramsThen({}, cat(varint(0x0b), varint(5), 0x01)) }],
    ['original_destination_connection_id sent by a client', { params: { originalDestinationConnectionId: rand(8) } }],
    ['stateless_reset_token sent by a client', { params: { statelessResetToken: rand(16) } }],
    ['retry_source_connection_id sent by a client', { params: { retrySourceConnectionId: rand(8) } }],
    ['sdnet_direct_addresses sent by a client (server-only, like preferred_address)', { params: { sdnetDirectAddresses: [{ ip: Uint8Array.of(127, 0, 0, 1), port: 1 }] } }],
    ['initial_source_connection_id missing', { rawParams: (scid) => paramsThen({ initialSourceConnectionId: undefined }, new Uint8Array(0))(scid) }],
    ['initial_source_connection_id not the SCID of the Initial', { params: { initialSourceConnectionId: rand(8) } }],
  ];
  for (const [what, options] of cases) {
    it(`${what} → TRANSPORT_PARAMETER_ERROR`, () => {
      const { arena, peer, conn } = firstFlight(options);
      expectClosedWith(arena, conn, peer, E.TRANSPORT_PARAMETER_ERROR);
    });
  }
});
