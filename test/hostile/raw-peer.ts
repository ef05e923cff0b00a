/**
 * A test-only QUIC client built from sdnet's public building blocks (TLS client session,
 * packet keys, header protection, header and frame codecs), so a test holds every key of the
 * connection and can put *any* bytes in a correctly protected packet: the attacker of the
 * hostile-input suite (reliability.md §5.A, §5.C, §5.D).
 *
 * It speaks just enough QUIC to finish a handshake (CRYPTO in Initial and Handshake packets,
 * ACKs for the Handshake space); everything after that is up to the test. It is sans-IO: it
 * builds datagrams and reads the victim's datagrams; `arena.ts` moves them.
 */
import { toHex } from '../../src/util/bytes.ts';
import { nodeCryptoProvider, type CryptoProvider } from '../../src/transport/crypto/index.ts';
import { RangeSet } from '../../src/transport/quic/connection/range-set.ts';
import { RecvBuffer } from '../../src/transport/quic/connection/recv-buffer.ts';
import { PacketKeys, decodePacketNumber, initialKeys, protectHeader, unprotectHeader, type DirectionalKeys } from '../../src/transport/quic/protection/packet-keys.ts';
import { TlsClientSession } from '../../src/transport/quic/tls/index.ts';
import { decodeClientHello, encodeClientHello, type ClientHello } from '../../src/transport/quic/tls/messages.ts';
import { decodeFrame, type Frame } from '../../src/transport/quic/wire/frames.ts';
import { QUIC_V1, parseHeader } from '../../src/transport/quic/wire/header.ts';
import { ByteReader } from '../../src/transport/quic/wire/reader.ts';
import { DEFAULT_TRANSPORT_PARAMETERS, encodeTransportParameters, type TransportParameters } from '../../src/transport/quic/wire/transport-params.ts';
import { writeVarintBig } from '../../src/transport/quic/wire/varint.ts';

// ---------------------------------------------------------------- raw frame bytes

/** A varint field: numbers, or bigints for values above 2^53 (up to 2^62 − 1). */
export type V = number | bigint;

export function varint(v: V): Uint8Array {
  const out = new Uint8Array(8);
  return out.subarray(0, writeVarintBig(out, 0, BigInt(v)));
}

/** Concatenate byte arrays; plain numbers are single bytes. */
export function cat(...parts: (Uint8Array | number)[]): Uint8Array {
  const arrays = parts.map((p) => (typeof p === 'number' ? Uint8Array.of(p) : p));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

const lenPrefixed = (data: Uint8Array) => cat(varint(data.length), data);

/**
 * Frame encoders with no validation at all (RFC 9000 §19): every field is whatever the test
 * asks for, including values our own encoder would refuse.
 */
export const F = {
  padding: (n = 1) => new Uint8Array(n),
  ping: () => Uint8Array.of(0x01),
  /** ACK: `first` is the first range length; `ranges` are [gap, length] pairs; `count` overrides the range count. */
  ack: (largest: V, o: { first?: V; delay?: V; ranges?: [V, V][]; count?: V } = {}) =>
    cat(0x02, varint(largest), varint(o.delay ?? 0), varint(o.count ?? o.ranges?.length ?? 0), varint(o.first ?? 0), ...(o.ranges ?? []).flatMap(([g, l]) => [varint(g), varint(l)])),
  resetStream: (id: V, code: V, finalSize: V) => cat(0x04, varint(id), varint(code), varint(finalSize)),
  stopSending: (id: V, code: V) => cat(0x05, varint(id), varint(code)),
  crypto: (offset: V, data: Uint8Array) => cat(0x06, varint(offset), lenPrefixed(data)),
  newToken: (token: Uint8Array) => cat(0x07, lenPrefixed(token)),
  /** STREAM with explicit offset and length (type 0x0e/0x0f). */
  stream: (id: V, offset: V, data: Uint8Array, fin = false) => cat(fin ? 0x0f : 0x0e, varint(id), varint(offset), lenPrefixed(data)),
  maxData: (max: V) => cat(0x10, varint(max)),
  maxStreamData: (id: V, max: V) => cat(0x11, varint(id), varint(max)),
  maxStreams: (dir: 'bi' | 'uni', max: V) => cat(dir === 'bi' ? 0x12 : 0x13, varint(max)),
  dataBlocked: (limit: V) => cat(0x14, varint(limit)),
  streamDataBlocked: (id: V, limit: V) => cat(0x15, varint(id), varint(limit)),
  streamsBlocked: (dir: 'bi' | 'uni', limit: V) => cat(dir === 'bi' ? 0x16 : 0x17, varint(limit)),
  newConnectionId: (seq: V, retirePriorTo: V, cid: Uint8Array, token: Uint8Array = new Uint8Array(16)) => cat(0x18, varint(seq), varint(retirePriorTo), cid.length, cid, token),
  retireConnectionId: (seq: V) => cat(0x19, varint(seq)),
  pathChallenge: (data: Uint8Array) => cat(0x1a, data),
  pathResponse: (data: Uint8Array) => cat(0x1b, data),
  connectionClose: (code: V, frameType: V, reason: Uint8Array = new Uint8Array(0)) => cat(0x1c, varint(code), varint(frameType), lenPrefixed(reason)),
  applicationClose: (code: V, reason: Uint8Array = new Uint8Array(0)) => cat(0x1d, varint(code), lenPrefixed(reason)),
  handshakeDone: () => Uint8Array.of(0x1e),
  datagram: (data: Uint8Array) => cat(0x31, lenPrefixed(data)),
};

// ---------------------------------------------------------------- the peer

export type Level = 'initial' | 'handshake' | 'app';

interface SpaceState {
  keys: DirectionalKeys | undefined;
  nextPn: number;
  readonly received: RangeSet;
  largest: number;
  ackPending: boolean;
  readonly cryptoIn: RecvBuffer;
  cryptoOutOffset: number;
  readonly cryptoOut: Uint8Array[];
}

export interface PacketOptions {
  /** Packet number (default: the next one); always encoded on 4 bytes. */
  pn?: number;
  dcid?: Uint8Array;
  scid?: Uint8Array;
  /** Initial packets: the token. */
  token?: Uint8Array;
  /** Pad the payload (PADDING) so the packet is at least this long. */
  padTo?: number;
  /** Short header: key phase bit. */
  keyPhase?: 0 | 1;
  /** Clear the fixed bit (0x40), which v1 requires to be 1. */
  clearFixedBit?: boolean;
  /** Reserved bits to set (before header protection): 2 bits. */
  reservedBits?: number;
  /** Seal with these keys instead of the level's. */
  keys?: PacketKeys;
  /** Flip a bit of the AEAD tag. */
  corruptTag?: boolean;
  /** Long-header version (default v1). */
  version?: number;
  /** 1-RTT with multipath: the path id (its nonce, multipath-21 §2.4); default 0. */
  pathId?: number;
}

export interface ReceivedClose {
  readonly level: Level;
  readonly app: boolean;
  readonly code: number;
  readonly frameType: number;
  readonly reason: Uint8Array;
}

export interface RawPeerOptions {
  /** The server's Ed25519 public key (the EndpointId dialled). */
  serverKey: Uint8Array;
  alpn?: Uint8Array;
  provider?: CryptoProvider;
  /** Our Ed25519 seed (client certificate). */
  secretKey?: Uint8Array;
  /** The Destination Connection ID of our first Initial (default 8 random bytes). */
  dcid?: Uint8Array;
  /** Our Source Connection ID (8 bytes by default). */
  scid?: Uint8Array;
  /** Overrides of our (otherwise sane) transport parameters. */
  params?: Partial<TransportParameters>;
  /** Raw transport-parameter bytes instead; `null` leaves the extension out. */
  rawParams?: (scid: Uint8Array) => Uint8Array | null;
  /** Rewrite the ClientHello before it is sent. */
  editClientHello?: (ch: ClientHello) => ClientHello;
  /** Rewrite our Handshake-level flight (Certificate, CertificateVerify, Finished). */
  editHandshakeFlight?: (data: Uint8Array) => Uint8Array;
  /** Answer the server's flight automatically (default true). */
  autoFinish?: boolean;
}

export const TEST_ALPN = new TextEncoder().encode('hostile/1');

export class RawPeer {
  readonly provider: CryptoProvider;
  readonly dcid: Uint8Array;
  readonly scid: Uint8Array;
  readonly tls: TlsClientSession;
  readonly autoFinish: boolean;
  readonly #editHandshakeFlight: ((data: Uint8Array) => Uint8Array) | undefined;
  /** The server's SCID from its first long-header packet (our DCID from then on). */
  serverCid: Uint8Array | undefined;
  readonly spaces: Record<Level, SpaceState>;
  /** Every frame the server sent us, decrypted. */
  readonly frames: { level: Level; pn: number; frame: Frame }[] = [];
  /** CONNECTION_CLOSE frames the server sent us. */
  readonly closes: ReceivedClose[] = [];
  /** NEW_CONNECTION_ID frames the server sent us. */
  readonly serverCids: { seq: number; cid: Uint8Array; token: Uint8Array; pathId: number }[] = [];
  /** Connection IDs we issued for multipath paths above 0 (hex → path id): packets to them open with that path's nonce. */
  readonly ownPathCids = new Map<string, number>();
  /** Datagrams from the server we could not parse or decrypt (stateless resets, VN, ...). */
  readonly opaque: Uint8Array[] = [];
  /** Datagrams to send (our automatic handshake answers). */
  readonly outbox: Uint8Array[] = [];
  /** Retry packets the server sent us: its new SCID and the token. */
  readonly retries: { scid: Uint8Array; token: Uint8Array }[] = [];
  /** The token our Initials carry (from a Retry we followed). */
  retryToken: Uint8Array = new Uint8Array(0);
  /** Our Initials' DCID until the server's first long header (changed by a Retry). */
  #initialDcid: Uint8Array;
  readonly #hello: Uint8Array;
  tlsError: unknown;

  constructor(options: RawPeerOptions) {
    this.provider = options.provider ?? nodeCryptoProvider;
    this.dcid = options.dcid ?? this.provider.randomBytes(8);
    this.#initialDcid = this.dcid;
    this.scid = options.scid ?? this.provider.randomBytes(8);
    this.autoFinish = options.autoFinish ?? true;
    this.#editHandshakeFlight = options.editHandshakeFlight;
    const space = (): SpaceState => ({ keys: undefined, nextPn: 0, received: new RangeSet(), largest: -1, ackPending: false, cryptoIn: new RecvBuffer(), cryptoOutOffset: 0, cryptoOut: [] });
    this.spaces = { initial: space(), handshake: space(), app: space() };
    this.spaces.initial.keys = initialKeys(this.provider, this.dcid, 'client');
    const params: TransportParameters = {
      ...DEFAULT_TRANSPORT_PARAMETERS,
      maxIdleTimeout: 30_000,
      initialMaxData: 16 * 1024 * 1024,
      initialMaxStreamDataBidiLocal: 1024 * 1024,
      initialMaxStreamDataBidiRemote: 1024 * 1024,
      initialMaxStreamDataUni: 1024 * 1024,
      initialMaxStreamsBidi: 100,
      initialMaxStreamsUni: 100,
      initialSourceConnectionId: this.scid,
      maxDatagramFrameSize: 65535,
      ...options.params,
    };
    const raw = options.rawParams ? options.rawParams(this.scid) : encodeTransportParameters(params);
    this.tls = new TlsClientSession({
      provider: this.provider,
      certificate: { type: 'raw-public-key', secretKey: options.secretKey ?? this.provider.randomBytes(32) },
      alpnProtocols: [options.alpn ?? TEST_ALPN],
      ...(raw !== null ? { transportParameters: raw } : {}),
      expectedServerKey: options.serverKey,
    });
    // The ClientHello is queued at construction; rewrite it here if asked.
    const hello = this.tls.pollHandshakeData()!;
    let helloBytes = hello.data;
    if (options.editClientHello) helloBytes = encodeClientHello(options.editClientHello(decodeClientHello(hello.data.subarray(4))));
    this.#hello = helloBytes;
    this.spaces.initial.cryptoOut.push(helloBytes);
    this.#pumpTls();
  }

  /** Follow the last Retry (RFC 9000 §17.2.5.2): its SCID as DCID, new Initial keys, the token, the ClientHello again. */
  followRetry(): void {
    const r = this.retries.at(-1);
    if (r === undefined) throw new Error('RawPeer: no Retry to follow');
    this.#initialDcid = r.scid;
    this.retryToken = r.token;
    const initial = this.spaces.initial;
    initial.keys = initialKeys(this.provider, r.scid, 'client');
    initial.cryptoOut.splice(0, initial.cryptoOut.length, this.#hello);
    initial.cryptoOutOffset = 0;
  }

  /** True once our TLS handshake finished (we hold 1-RTT keys). */
  get handshakeComplete(): boolean {
    return !this.tls.isHandshaking && this.spaces.app.keys !== undefined;
  }

  // ---------------------------------------------------------------- building packets

  /** Take the queued CRYPTO bytes of a level as CRYPTO frames. */
  takeCrypto(level: Level): Uint8Array[] {
    const s = this.spaces[level];
    const frames: Uint8Array[] = [];
    for (const data of s.cryptoOut.splice(0)) {
      frames.push(F.crypto(s.cryptoOutOffset, data));
      s.cryptoOutOffset += data.length;
    }
    return frames;
  }

  /** Our first Initial: the ClientHello (plus `extra` frames), padded to a `size`-byte datagram (1200). */
  initialDatagram(o: { extra?: Uint8Array[]; before?: Uint8Array[]; size?: number; packet?: PacketOptions } = {}): Uint8Array {
    return this.packet('initial', [...(o.before ?? []), ...this.takeCrypto('initial'), ...(o.extra ?? [])], { padTo: o.size ?? 1200, ...o.packet });
  }

  /** A protected packet at `level` carrying `frames` (raw bytes, concatenated). */
  packet(level: Level, frames: Uint8Array[], o: PacketOptions = {}): Uint8Array {
    const s = this.spaces[level];
    const keys = o.keys ?? s.keys?.local;
    if (keys === undefined) throw new Error(`RawPeer: no ${level} keys yet`);
    const pn = o.pn ?? s.nextPn;
    s.nextPn = Math.max(s.nextPn, pn + 1);
    let payload = cat(...frames);
    const dcid = o.dcid ?? this.serverCid ?? this.#initialDcid;
    const pnBytes = Uint8Array.of((pn >>> 24) & 0xff, (pn >>> 16) & 0xff, (pn >>> 8) & 0xff, pn & 0xff);
    const reserved = o.reservedBits ?? 0;
    let header: Uint8Array;
    if (level === 'app') {
      header = cat(0x40 | (reserved << 3) | ((o.keyPhase ?? 0) << 2) | 0x03, dcid, pnBytes);
    } else {
      const scid = o.scid ?? this.scid;
      const typeBits = level === 'initial' ? 0 : 2;
      const token = level === 'initial' ? lenPrefixed(o.token ?? this.retryToken) : new Uint8Array(0);
      const fixedLen = 1 + 4 + 1 + dcid.length + 1 + scid.length + token.length + 2 + 4;
      if (o.padTo !== undefined && fixedLen + payload.length + 16 < o.padTo) payload = cat(payload, new Uint8Array(o.padTo - (fixedLen + payload.length + 16)));
      const length = 4 + payload.length + 16;
      if (length >= 0x4000) throw new Error('RawPeer: packet too long for a 2-byte Length');
      const version = o.version ?? QUIC_V1;
      header = cat(0xc0 | (typeBits << 4) | (reserved << 2) | 0x03, version >>> 24, (version >>> 16) & 0xff, (version >>> 8) & 0xff, version & 0xff, dcid.length, dcid, scid.length, scid, token, 0x40 | (length >> 8), length & 0xff, pnBytes);
    }
    if (level === 'app' && o.padTo !== undefined && header.length + payload.length + 16 < o.padTo) payload = cat(payload, new Uint8Array(o.padTo - (header.length + payload.length + 16)));
    if (o.clearFixedBit) header[0]! &= ~0x40;
    const sealed = keys.seal(pn, header, payload, o.pathId ?? 0);
    if (o.corruptTag) sealed[sealed.length - 1]! ^= 0x01;
    const packet = cat(header, sealed);
    protectHeader(packet, header.length - 4, 4, keys.header);
    return packet;
  }

  /** A PATH_NEW_CONNECTION_ID frame issuing `cid` for `pathId` (multipath-21 §4.5), remembered for receiving. */
  issuePathCid(pathId: number, seq: number, cid: Uint8Array): Uint8Array {
    this.ownPathCids.set(toHex(cid), pathId);
    return cat(varint(0x3e78), varint(pathId), varint(seq), varint(0), cid.length, cid, new Uint8Array(16).fill(0x5a));
  }

  /** The server's connection ID for `pathId` (the first it issued), if any. */
  serverCidFor(pathId: number): Uint8Array | undefined {
    return this.serverCids.find((c) => c.pathId === pathId)?.cid;
  }

  /** A 1-RTT packet carrying `frames`. */
  oneRtt(...frames: Uint8Array[]): Uint8Array {
    return this.packet('app', frames);
  }

  /** An ACK frame for everything received at `level`, or undefined. */
  ackFrame(level: Level): Uint8Array | undefined {
    const s = this.spaces[level];
    const ranges = [...s.received.descending()];
    if (ranges.length === 0) return undefined;
    const [first, ...rest] = ranges;
    const out: [V, V][] = [];
    let smallest = first![0];
    for (const [start, end] of rest) {
      out.push([smallest - end - 1, end - 1 - start]);
      smallest = start;
    }
    s.ackPending = false;
    return F.ack(first![1] - 1, { first: first![1] - 1 - first![0], ranges: out });
  }

  /** Take the datagrams queued by automatic handshake answers. */
  takeOutgoing(): Uint8Array[] {
    return this.outbox.splice(0);
  }

  // ---------------------------------------------------------------- reading the victim

  /** A datagram from the server. */
  receive(datagram: Uint8Array): void {
    let offset = 0;
    let any = false;
    while (offset < datagram.length) {
      let header;
      try {
        header = parseHeader(datagram, offset, this.scid.length);
      } catch {
        break;
      }
      if (header.form === 'long' && header.type === 'retry') {
        this.retries.push({ scid: header.scid.slice(), token: datagram.slice(header.pnOffset, datagram.length - 16) });
        any = true;
        break;
      }
      if (header.form === 'version-negotiation' || (header.form === 'long' && header.type === '0rtt')) break;
      const level: Level = header.form === 'short' ? 'app' : header.type === 'initial' ? 'initial' : 'handshake';
      const s = this.spaces[level];
      const end = header.end;
      if (s.keys !== undefined) {
        const buf = datagram.slice(header.start, end);
        const pnOffset = header.pnOffset - header.start;
        const hp = unprotectHeader(buf, pnOffset, s.keys.remote.header);
        if (hp !== undefined) {
          const pn = decodePacketNumber(s.largest, hp.truncatedPn, hp.pnLength * 8);
          const pathId = header.form === 'short' ? (this.ownPathCids.get(toHex(header.dcid)) ?? 0) : 0;
          const payload = s.keys.remote.open(pn, buf.subarray(0, pnOffset + hp.pnLength), buf.subarray(pnOffset + hp.pnLength), pathId);
          if (payload !== null) {
            any = true;
            if (header.form === 'long' && this.serverCid === undefined) this.serverCid = header.scid.slice();
            s.received.insert(pn, pn + 1);
            s.largest = Math.max(s.largest, pn);
            this.#onFrames(level, pn, payload);
          }
        }
      }
      offset = end;
    }
    if (!any) this.opaque.push(datagram.slice());
    if (this.autoFinish) this.#answer();
  }

  #onFrames(level: Level, pn: number, payload: Uint8Array): void {
    const r = new ByteReader(payload);
    const s = this.spaces[level];
    while (!r.done) {
      const { frame } = decodeFrame(r);
      this.frames.push({ level, pn, frame });
      if (frame.type !== 'ack' && frame.type !== 'padding' && frame.type !== 'connection_close') s.ackPending = true;
      switch (frame.type) {
        case 'crypto':
          s.cryptoIn.insert(frame.offset, frame.data.slice());
          for (let chunk = s.cryptoIn.read(); chunk !== undefined; chunk = s.cryptoIn.read()) {
            try {
              this.tls.handleHandshakeData(level === 'app' ? 'application' : level, chunk);
            } catch (err) {
              this.tlsError ??= err;
            }
          }
          this.#pumpTls();
          break;
        case 'connection_close':
          this.closes.push({ level, app: frame.app, code: frame.code, frameType: frame.frameType, reason: frame.reason.slice() });
          break;
        case 'new_connection_id':
          this.serverCids.push({ seq: frame.seq, cid: frame.cid, token: frame.resetToken, pathId: frame.pathId ?? 0 });
          break;
        default:
          break;
      }
    }
  }

  #pumpTls(): void {
    for (;;) {
      const secrets = this.tls.pollSecrets();
      if (secrets !== undefined) {
        this.spaces[secrets.level === 'handshake' ? 'handshake' : 'app'].keys = {
          local: PacketKeys.fromSecret(this.provider, secrets.suite, secrets.local),
          remote: PacketKeys.fromSecret(this.provider, secrets.suite, secrets.remote),
        };
        continue;
      }
      const out = this.tls.pollHandshakeData();
      if (out === undefined) return;
      const level: Level = out.level === 'application' ? 'app' : out.level;
      this.spaces[level].cryptoOut.push(level === 'handshake' && this.#editHandshakeFlight ? this.#editHandshakeFlight(out.data) : out.data);
    }
  }

  /** Send our Handshake flight (and ACK the server's Handshake packets) when due. */
  #answer(): void {
    const hs = this.spaces.handshake;
    if (hs.keys === undefined || (hs.cryptoOut.length === 0 && !hs.ackPending)) return;
    const ack = this.ackFrame('handshake');
    this.outbox.push(this.packet('handshake', [...(ack ? [ack] : []), ...this.takeCrypto('handshake')]));
  }

  // ---------------------------------------------------------------- queries

  /** Frames of one type the server sent. */
  framesOf<T extends Frame['type']>(type: T): Extract<Frame, { type: T }>[] {
    return this.frames.filter((f) => f.frame.type === type).map((f) => f.frame as Extract<Frame, { type: T }>);
  }
}
