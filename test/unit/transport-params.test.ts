/**
 * The sdnet_direct_addresses transport parameter (server → client): what a server advertises
 * round-trips, and every malformed value a hostile server could send is a
 * TRANSPORT_PARAMETER_ERROR before anything is allocated beyond its bound.
 */
import { describe, expect, it } from 'vitest';
import { TransportError, TransportErrorCode } from '../../src/transport/quic/errors.ts';
import { MAX_PEER_DIRECT_ADDRESSES } from '../../src/transport/quic/limits.ts';
import { DEFAULT_TRANSPORT_PARAMETERS, TransportParameterId, decodeTransportParameters, encodeTransportParameters } from '../../src/transport/quic/wire/transport-params.ts';
import { ByteWriter } from '../../src/transport/quic/wire/writer.ts';

/** Parameters holding only sdnet_direct_addresses with this raw value. */
function withValue(value: Uint8Array): Uint8Array {
  return new ByteWriter(64).varint(TransportParameterId.sdnet_direct_addresses).varint(value.length).bytes(value).finish();
}

function expectParamError(bytes: Uint8Array, message: RegExp): void {
  let caught: unknown;
  try {
    decodeTransportParameters(bytes, 'server');
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TransportError);
  expect((caught as TransportError).transportCode).toBe(TransportErrorCode.TRANSPORT_PARAMETER_ERROR);
  expect((caught as Error).message).toMatch(message);
}

describe('sdnet_direct_addresses', () => {
  it('round-trips IPv4 and IPv6 addresses, and an empty list', () => {
    const list = [
      { ip: Uint8Array.of(192, 0, 2, 1), port: 4433 },
      { ip: Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]), port: 65535 },
    ];
    const decoded = decodeTransportParameters(encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, sdnetDirectAddresses: list }), 'server');
    expect(decoded.sdnetDirectAddresses).toEqual(list);
    const empty = decodeTransportParameters(encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, sdnetDirectAddresses: [] }), 'server');
    expect(empty.sdnetDirectAddresses).toEqual([]);
    // Absent: not an sdnet peer.
    expect(decodeTransportParameters(encodeTransportParameters(DEFAULT_TRANSPORT_PARAMETERS), 'server').sdnetDirectAddresses).toBeUndefined();
  });

  it('sends at most the bound, and rejects a peer that sends more', () => {
    const many = Array.from({ length: MAX_PEER_DIRECT_ADDRESSES + 5 }, (_, i) => ({ ip: Uint8Array.of(10, 0, 0, i), port: 1000 + i }));
    const decoded = decodeTransportParameters(encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, sdnetDirectAddresses: many }), 'server');
    expect(decoded.sdnetDirectAddresses).toHaveLength(MAX_PEER_DIRECT_ADDRESSES);
    const raw = new ByteWriter(256);
    for (let i = 0; i <= MAX_PEER_DIRECT_ADDRESSES; i++) raw.u8(4).bytes(Uint8Array.of(10, 0, 0, i)).u16(1);
    expectParamError(withValue(raw.finish()), /too many/);
  });

  it('rejects an unknown family, port 0 and a truncated entry', () => {
    expectParamError(withValue(Uint8Array.of(5, 1, 2, 3, 4, 0, 1)), /family/);
    expectParamError(withValue(Uint8Array.of(4, 127, 0, 0, 1, 0, 0)), /port 0/);
    expectParamError(withValue(Uint8Array.of(6, 0, 0, 0)), /./);
  });

  it('is server-only: a client sending it is a TRANSPORT_PARAMETER_ERROR', () => {
    const bytes = encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, sdnetDirectAddresses: [] });
    expect(() => decodeTransportParameters(bytes, 'client')).toThrow(TransportError);
  });
});
