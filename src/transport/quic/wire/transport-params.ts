/**
 * QUIC transport parameters (RFC 9000 §7.4, §18) plus max_datagram_frame_size (RFC 9221 §3).
 *
 * Decoding validates RFC 9000 §18.2 bounds, rejects duplicates (§7.4.1: "An endpoint MUST
 * NOT send a parameter more than once"), rejects server-only parameters from a client, and
 * ignores unknown ids (§18.1) — such as iroh's ACK-frequency parameter (iroh-wire §7.10). The
 * multipath (draft-ietf-quic-multipath-21) and n0 NAT-traversal parameters are decoded. Encoding can add a GREASE
 * parameter (§18.1: ids of the form 31 × N + 27).
 *
 * Flow-control credits may be up to 2^62 − 1 (iroh sends that for initial_max_data); they are
 * held as numbers clamped to 2^53 − 1, which is beyond any reachable byte count.
 *
 * @module
 */
import { ByteReader } from './reader.ts';
import { ByteWriter } from './writer.ts';
import { readVarintBig } from './varint.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { DecodeError } from '../../../util/errors.ts';
import { MAX_PEER_DIRECT_ADDRESSES } from '../limits.ts';

export const TransportParameterId = {
  original_destination_connection_id: 0x00,
  max_idle_timeout: 0x01,
  stateless_reset_token: 0x02,
  max_udp_payload_size: 0x03,
  initial_max_data: 0x04,
  initial_max_stream_data_bidi_local: 0x05,
  initial_max_stream_data_bidi_remote: 0x06,
  initial_max_stream_data_uni: 0x07,
  initial_max_streams_bidi: 0x08,
  initial_max_streams_uni: 0x09,
  ack_delay_exponent: 0x0a,
  max_ack_delay: 0x0b,
  disable_active_migration: 0x0c,
  preferred_address: 0x0d,
  active_connection_id_limit: 0x0e,
  initial_source_connection_id: 0x0f,
  retry_source_connection_id: 0x10,
  max_datagram_frame_size: 0x20,
  /**
   * sdnet extension, server → client: the server's direct UDP addresses. Its presence tells
   * the client that the server follows RFC 9000 migration between relayed and direct paths
   * (iroh ignores it as an unknown id, RFC 9000 §18.1).
   */
  sdnet_direct_addresses: 0x73646e61,
  /** QUIC address discovery (draft-ietf-quic-address-discovery §2): 0 send, 1 receive, 2 both. */
  address_discovery: 0x9f81a176,
  /** draft-ietf-quic-multipath-21 §2.1: initial_max_path_id. */
  initial_max_path_id: 0x3e,
} as const;

/**
 * n0 NAT traversal (holepunch.md §2.1): a one-byte value, the number of addresses the sender
 * keeps from its peer. Above 2^32, so it is matched apart from the ids above.
 */
export const N0_NAT_TRAVERSAL_PARAMETER = 0x3d7f91120401n;

/**
 * The address_discovery value (draft-ietf-quic-address-discovery §2): 0 = we provide
 * observations only, 1 = we want to receive them only, 2 = both.
 */
export type AddressDiscoveryMode = 0 | 1 | 2;

/** A direct UDP address carried in `sdnet_direct_addresses`. */
export interface DirectAddress {
  /** 4 or 16 bytes. */
  readonly ip: Uint8Array;
  readonly port: number;
}

export interface PreferredAddress {
  ipv4: Uint8Array;
  ipv4Port: number;
  ipv6: Uint8Array;
  ipv6Port: number;
  connectionId: Uint8Array;
  statelessResetToken: Uint8Array;
}

/** Transport parameters with RFC 9000 §18.2 defaults filled in. */
export interface TransportParameters {
  originalDestinationConnectionId?: Uint8Array;
  /** Milliseconds; 0 = no idle timeout. */
  maxIdleTimeout: number;
  statelessResetToken?: Uint8Array;
  maxUdpPayloadSize: number;
  initialMaxData: number;
  initialMaxStreamDataBidiLocal: number;
  initialMaxStreamDataBidiRemote: number;
  initialMaxStreamDataUni: number;
  initialMaxStreamsBidi: number;
  initialMaxStreamsUni: number;
  ackDelayExponent: number;
  /** Milliseconds. */
  maxAckDelay: number;
  disableActiveMigration: boolean;
  preferredAddress?: PreferredAddress;
  activeConnectionIdLimit: number;
  initialSourceConnectionId?: Uint8Array;
  retrySourceConnectionId?: Uint8Array;
  /** 0 = DATAGRAM frames not supported (RFC 9221 §3). */
  maxDatagramFrameSize: number;
  /** The sdnet extension; undefined when the peer did not send it (not an sdnet peer). */
  sdnetDirectAddresses?: readonly DirectAddress[];
  /** QUIC address discovery; undefined when the parameter was absent (extension not used). */
  addressDiscovery?: AddressDiscoveryMode;
  /** multipath-21 §2.1; undefined when absent (multipath not offered). At most 2^32 − 1. */
  initialMaxPathId?: number;
  /** n0 NAT traversal: addresses the sender keeps from its peer (1..255); undefined when absent. */
  natTraversal?: number;
}

export const DEFAULT_TRANSPORT_PARAMETERS: Readonly<TransportParameters> = {
  maxIdleTimeout: 0,
  maxUdpPayloadSize: 65527,
  initialMaxData: 0,
  initialMaxStreamDataBidiLocal: 0,
  initialMaxStreamDataBidiRemote: 0,
  initialMaxStreamDataUni: 0,
  initialMaxStreamsBidi: 0,
  initialMaxStreamsUni: 0,
  ackDelayExponent: 3,
  maxAckDelay: 25,
  disableActiveMigration: false,
  activeConnectionIdLimit: 2,
  maxDatagramFrameSize: 0,
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_CID = 20;
const MAX_STREAMS = 2n ** 60n;

function paramError(reason: string): TransportError {
  return new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, reason);
}

/** Read one varint filling the whole parameter value. */
function varintValue(value: Uint8Array, name: string): bigint {
  const r = readVarintBig(value, 0);
  if (r === undefined || r[1] !== value.length) throw paramError(`${name} is not a single varint`);
  return r[0];
}

const clamp = (v: bigint): number => Number(v > MAX_SAFE ? MAX_SAFE : v);

function connectionId(value: Uint8Array, name: string): Uint8Array {
  if (value.length > MAX_CID) throw paramError(`${name} is longer than 20 bytes`);
  return value.slice();
}

/** Every parameter id we know (each handshake decodes one list: no array per parameter). */
const KNOWN_IDS: ReadonlySet<number> = new Set(Object.values(TransportParameterId));
/** Parameters only a server may send (RFC 9000 §18.2), and our own server-only one. */
const SERVER_ONLY: ReadonlySet<number> = new Set([
  TransportParameterId.original_destination_connection_id,
  TransportParameterId.stateless_reset_token,
  TransportParameterId.preferred_address,
  TransportParameterId.retry_source_connection_id,
  TransportParameterId.sdnet_direct_addresses,
]);

/**
 * Decode the peer's transport parameters. `from` is the sender's role.
 *
 * @throws {TransportError} TRANSPORT_PARAMETER_ERROR on any malformed or out-of-range value
 */
export function decodeTransportParameters(bytes: Uint8Array, from: 'client' | 'server'): TransportParameters {
  const out: TransportParameters = { ...DEFAULT_TRANSPORT_PARAMETERS };
  const seen = new Set<number>();
  const r = new ByteReader(bytes);
  try {
    while (!r.done) {
      const idBig = readVarintBig(r.buf, r.pos);
      if (idBig === undefined) throw paramError('truncated parameter id');
      r.pos += idBig[1];
      const len = r.varint('parameter length');
      const value = r.bytes(len, 'parameter value');
      if (idBig[0] === N0_NAT_TRAVERSAL_PARAMETER) {
        // holepunch.md §2.1: exactly one non-zero byte; a duplicate is an error like any other.
        if (out.natTraversal !== undefined) throw paramError('n0 NAT traversal parameter appears twice');
        if (value.length !== 1 || value[0] === 0) throw paramError('n0 NAT traversal parameter is not one non-zero byte');
        out.natTraversal = value[0];
        continue;
      }
      if (idBig[0] > 0xffffffffn) continue; // an unknown (large) id: ignored (RFC 9000 §18.1)
      const id = Number(idBig[0]);
      if (!KNOWN_IDS.has(id)) continue;
      if (seen.has(id)) throw paramError(`parameter 0x${id.toString(16)} appears twice`);
      seen.add(id);
      // RFC 9000 §18.2: a client MUST NOT send these; a server receiving them → TRANSPORT_PARAMETER_ERROR.
      if (from === 'client' && SERVER_ONLY.has(id)) throw paramError(`client sent server-only parameter 0x${id.toString(16)}`);
      switch (id) {
        case TransportParameterId.original_destination_connection_id:
          out.originalDestinationConnectionId = connectionId(value, 'original_destination_connection_id');
          break;
        case TransportParameterId.max_idle_timeout:
          out.maxIdleTimeout = clamp(varintValue(value, 'max_idle_timeout'));
          break;
        case TransportParameterId.stateless_reset_token:
          if (value.length !== 16) throw paramError('stateless_reset_token is not 16 bytes');
          out.statelessResetToken = value.slice();
          break;
        case TransportParameterId.max_udp_payload_size: {
          const v = varintValue(value, 'max_udp_payload_size');
          // RFC 9000 §18.2: values below 1200 are invalid.
          if (v < 1200n) throw paramError('max_udp_payload_size below 1200');
          out.maxUdpPayloadSize = clamp(v);
          break;
        }
        case TransportParameterId.initial_max_data:
          out.initialMaxData = clamp(varintValue(value, 'initial_max_data'));
          break;
        case TransportParameterId.initial_max_stream_data_bidi_local:
          out.initialMaxStreamDataBidiLocal = clamp(varintValue(value, 'initial_max_stream_data_bidi_local'));
          break;
        case TransportParameterId.initial_max_stream_data_bidi_remote:
          out.initialMaxStreamDataBidiRemote = clamp(varintValue(value, 'initial_max_stream_data_bidi_remote'));
          break;
        case TransportParameterId.initial_max_stream_data_uni:
          out.initialMaxStreamDataUni = clamp(varintValue(value, 'initial_max_stream_data_uni'));
          break;
        case TransportParameterId.initial_max_streams_bidi:
        case TransportParameterId.initial_max_streams_uni: {
          const v = varintValue(value, 'initial_max_streams');
          // RFC 9000 §18.2: more than 2^60 → TRANSPORT_PARAMETER_ERROR.
          if (v > MAX_STREAMS) throw paramError('initial_max_streams exceeds 2^60');
          if (id === TransportParameterId.initial_max_streams_bidi) out.initialMaxStreamsBidi = clamp(v);
          else out.initialMaxStreamsUni = clamp(v);
          break;
        }
        case TransportParameterId.ack_delay_exponent: {
          const v = varintValue(value, 'ack_delay_exponent');
          // RFC 9000 §18.2: values above 20 are invalid.
          if (v > 20n) throw paramError('ack_delay_exponent above 20');
          out.ackDelayExponent = Number(v);
          break;
        }
        case TransportParameterId.max_ack_delay: {
          const v = varintValue(value, 'max_ack_delay');
          // RFC 9000 §18.2: values of 2^14 or greater are invalid.
          if (v >= 2n ** 14n) throw paramError('max_ack_delay of 2^14 ms or more');
          out.maxAckDelay = Number(v);
          break;
        }
        case TransportParameterId.disable_active_migration:
          if (value.length !== 0) throw paramError('disable_active_migration has a value');
          out.disableActiveMigration = true;
          break;
        case TransportParameterId.preferred_address: {
          const p = new ByteReader(value);
          const ipv4 = p.bytes(4).slice();
          const ipv4Port = p.u16();
          const ipv6 = p.bytes(16).slice();
          const ipv6Port = p.u16();
          const cidLen = p.u8();
          // RFC 9000 §18.2: a zero-length connection id here is a TRANSPORT_PARAMETER_ERROR.
          if (cidLen === 0 || cidLen > MAX_CID) throw paramError('preferred_address has a bad connection id length');
          const cid = p.bytes(cidLen).slice();
          const token = p.bytes(16).slice();
          p.expectEnd('preferred_address');
          out.preferredAddress = { ipv4, ipv4Port, ipv6, ipv6Port, connectionId: cid, statelessResetToken: token };
          break;
        }
        case TransportParameterId.active_connection_id_limit: {
          const v = varintValue(value, 'active_connection_id_limit');
          // RFC 9000 §18.2: values below 2 are invalid.
          if (v < 2n) throw paramError('active_connection_id_limit below 2');
          out.activeConnectionIdLimit = clamp(v);
          break;
        }
        case TransportParameterId.initial_source_connection_id:
          out.initialSourceConnectionId = connectionId(value, 'initial_source_connection_id');
          break;
        case TransportParameterId.retry_source_connection_id:
          out.retrySourceConnectionId = connectionId(value, 'retry_source_connection_id');
          break;
        case TransportParameterId.max_datagram_frame_size:
          out.maxDatagramFrameSize = clamp(varintValue(value, 'max_datagram_frame_size'));
          break;
        case TransportParameterId.sdnet_direct_addresses:
          out.sdnetDirectAddresses = decodeDirectAddresses(value);
          break;
        case TransportParameterId.address_discovery: {
          const v = varintValue(value, 'address_discovery');
          // draft-ietf-quic-address-discovery §2: any other value than 0, 1, 2 MUST be a TRANSPORT_PARAMETER_ERROR.
          if (v > 2n) throw paramError('address_discovery is not 0, 1 or 2');
          out.addressDiscovery = Number(v) as AddressDiscoveryMode;
          break;
        }
        case TransportParameterId.initial_max_path_id: {
          const v = varintValue(value, 'initial_max_path_id');
          // multipath-21 §2.1: above 2^32 − 1 → TRANSPORT_PARAMETER_ERROR.
          if (v > 0xffffffffn) throw paramError('initial_max_path_id above 2^32 - 1');
          out.initialMaxPathId = Number(v);
          break;
        }
      }
    }
  } catch (err) {
    if (err instanceof DecodeError) throw paramError(err.message);
    throw err;
  }
  return out;
}

/** `sdnet_direct_addresses`: entries of family (4 | 6), address bytes, port (u16). */
function decodeDirectAddresses(value: Uint8Array): DirectAddress[] {
  const r = new ByteReader(value);
  const out: DirectAddress[] = [];
  while (!r.done) {
    if (out.length >= MAX_PEER_DIRECT_ADDRESSES) throw paramError('sdnet_direct_addresses lists too many addresses');
    const family = r.u8();
    if (family !== 4 && family !== 6) throw paramError('sdnet_direct_addresses has an unknown address family');
    const ip = r.bytes(family === 4 ? 4 : 16).slice();
    const port = r.u16();
    if (port === 0) throw paramError('sdnet_direct_addresses has port 0');
    out.push({ ip, port });
  }
  return out;
}

function encodeDirectAddresses(list: readonly DirectAddress[]): Uint8Array {
  const w = new ByteWriter(64);
  for (const a of list.slice(0, MAX_PEER_DIRECT_ADDRESSES)) {
    if (a.ip.length !== 4 && a.ip.length !== 16) continue;
    w.u8(a.ip.length === 4 ? 4 : 6).bytes(a.ip).u16(a.port);
  }
  return w.finish();
}

/** Encoding options. */
export interface EncodeOptions {
  /** Add one GREASE parameter (RFC 9000 §18.1) with these random bytes as id seed and value. */
  grease?: Uint8Array;
}

/** Encode our transport parameters; values equal to the defaults are left out. */
export function encodeTransportParameters(p: TransportParameters, options: EncodeOptions = {}): Uint8Array {
  const w = new ByteWriter(128);
  const put = (id: number, value: Uint8Array) => w.varint(id).varint(value.length).bytes(value);
  const putVarint = (id: number, v: number) => {
    const b = new ByteWriter(8);
    b.varint(v);
    put(id, b.finish());
  };
  const d = DEFAULT_TRANSPORT_PARAMETERS;
  const T = TransportParameterId;
  if (p.originalDestinationConnectionId) put(T.original_destination_connection_id, p.originalDestinationConnectionId);
  if (p.maxIdleTimeout !== d.maxIdleTimeout) putVarint(T.max_idle_timeout, p.maxIdleTimeout);
  if (p.statelessResetToken) put(T.stateless_reset_token, p.statelessResetToken);
  if (p.maxUdpPayloadSize !== d.maxUdpPayloadSize) putVarint(T.max_udp_payload_size, p.maxUdpPayloadSize);
  if (p.initialMaxData !== d.initialMaxData) putVarint(T.initial_max_data, p.initialMaxData);
  if (p.initialMaxStreamDataBidiLocal !== 0) putVarint(T.initial_max_stream_data_bidi_local, p.initialMaxStreamDataBidiLocal);
  if (p.initialMaxStreamDataBidiRemote !== 0) putVarint(T.initial_max_stream_data_bidi_remote, p.initialMaxStreamDataBidiRemote);
  if (p.initialMaxStreamDataUni !== 0) putVarint(T.initial_max_stream_data_uni, p.initialMaxStreamDataUni);
  if (p.initialMaxStreamsBidi !== 0) putVarint(T.initial_max_streams_bidi, p.initialMaxStreamsBidi);
  if (p.initialMaxStreamsUni !== 0) putVarint(T.initial_max_streams_uni, p.initialMaxStreamsUni);
  if (p.ackDelayExponent !== d.ackDelayExponent) putVarint(T.ack_delay_exponent, p.ackDelayExponent);
  if (p.maxAckDelay !== d.maxAckDelay) putVarint(T.max_ack_delay, p.maxAckDelay);
  if (p.disableActiveMigration) put(T.disable_active_migration, new Uint8Array(0));
  if (p.preferredAddress) {
    const a = p.preferredAddress;
    const b = new ByteWriter(64);
    b.bytes(a.ipv4).u16(a.ipv4Port).bytes(a.ipv6).u16(a.ipv6Port).vector(1, a.connectionId).bytes(a.statelessResetToken);
    put(T.preferred_address, b.finish());
  }
  if (p.activeConnectionIdLimit !== d.activeConnectionIdLimit) putVarint(T.active_connection_id_limit, p.activeConnectionIdLimit);
  if (p.initialSourceConnectionId) put(T.initial_source_connection_id, p.initialSourceConnectionId);
  if (p.retrySourceConnectionId) put(T.retry_source_connection_id, p.retrySourceConnectionId);
  if (p.maxDatagramFrameSize !== 0) putVarint(T.max_datagram_frame_size, p.maxDatagramFrameSize);
  if (p.sdnetDirectAddresses) put(T.sdnet_direct_addresses, encodeDirectAddresses(p.sdnetDirectAddresses));
  if (p.addressDiscovery !== undefined) putVarint(T.address_discovery, p.addressDiscovery);
  if (p.initialMaxPathId !== undefined) putVarint(T.initial_max_path_id, p.initialMaxPathId);
  if (p.natTraversal !== undefined) put(Number(N0_NAT_TRAVERSAL_PARAMETER), Uint8Array.of(p.natTraversal));
  if (options.grease && options.grease.length >= 2) {
    // RFC 9000 §18.1: reserved ids 31 × N + 27; value of up to 15 random bytes.
    const n = ((options.grease[0]! << 8) | options.grease[1]!) % 0x10000;
    const id = 31 * n + 27;
    const len = options.grease.length > 2 ? options.grease[2]! % 16 : 0;
    put(id, options.grease.subarray(3, 3 + len));
  }
  return w.finish();
}
