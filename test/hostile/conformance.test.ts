/**
 * Conformance rules a strict third-party QUIC stack enforces and iroh tolerates (issue 20),
 * checked on the wire against the RFC text with the raw-peer harness, so they hold without
 * any other stack installed:
 *
 *  1. RESET_STREAM carries the final size of what was *sent* (RFC 9000 §4.5, §19.4).
 *  2. `stopSending()` puts a STOP_SENDING on the wire, and data arriving afterwards still
 *     counts toward connection flow control (RFC 9000 §3.5, §4.5, §13.3).
 *  3. A client's datagram carrying an Initial is ≥ 1200 bytes, closes included (§14.1).
 *  4. Every PTO probe of a client's Initial carries the unacknowledged CRYPTO data (RFC 9002 §6.2.4).
 *
 * Each was a bug; each case here failed before its fix.
 */
import { describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import type { PathAddr } from '../../src/transport/quic/connection/types.ts';
import { QuicEndpoint } from '../../src/transport/quic/endpoint.ts';
import { decodePacketNumber, initialKeys, unprotectHeader } from '../../src/transport/quic/protection/packet-keys.ts';
import { decodeFrame, type Frame } from '../../src/transport/quic/wire/frames.ts';
import { parseHeader } from '../../src/transport/quic/wire/header.ts';
import { ByteReader } from '../../src/transport/quic/wire/reader.ts';
import { Arena, expectAlive, expectClosedWith } from './arena.ts';
import { F, TEST_ALPN, type RawPeer } from './raw-peer.ts';

const bytes = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill);

/** Highest stream offset (end of data) the raw peer received on stream `id`. */
function highestReceived(peer: RawPeer, id: number): number {
  let high = 0;
  for (const f of peer.framesOf('stream')) if (f.id === id) high = Math.max(high, f.offset + f.data.length);
  return high;
}

/** Acknowledge every 1-RTT packet the server sent the raw peer so far but `pn` (declared lost once three later ones are acknowledged). */
function ackAllBut(arena: Arena, peer: RawPeer, pn: number): void {
  const largest = peer.spaces.app.largest;
  arena.send(peer, [F.ack(largest, { first: largest - pn - 1, ranges: pn > 0 ? [[0, pn - 1]] : [] })]);
}

/** Acknowledge every 1-RTT packet the server sent the raw peer so far. */
function ackAll(arena: Arena, peer: RawPeer): void {
  const ack = peer.ackFrame('app');
  if (ack) arena.send(peer, [ack]);
}

describe('1. RESET_STREAM final size is what was sent (RFC 9000 §4.5, §19.4)', () => {
  it('2,000,000 bytes written and reset at once: RESET_STREAM announces 0, not 2,000,000', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(0, 0, bytes(1))]);
    expect(conn.writeStream(0, bytes(2_000_000))).toBe(2_000_000);
    conn.resetStream(0, 7);
    arena.pump();
    const resets = peer.framesOf('reset_stream').filter((f) => f.id === 0);
    expect(resets.length).toBeGreaterThan(0);
    expect(highestReceived(peer, 0)).toBe(0);
    // The raw peer's stream window is 1 MiB: 2,000,000 would be a FLOW_CONTROL_ERROR.
    for (const r of resets) expect(r.finalSize).toBe(0);
    expectAlive(arena, conn);
  });

  it('part of the data sent, then reset: the final size is the highest offset sent', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(0, 0, bytes(1))]);
    conn.writeStream(0, bytes(2_000_000));
    arena.advance(50); // pacing and the congestion window let a few packets go
    const sent = highestReceived(peer, 0);
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(2_000_000);
    conn.resetStream(0, 7);
    arena.advance(50);
    const resets = peer.framesOf('reset_stream').filter((f) => f.id === 0);
    expect(resets.map((r) => r.finalSize)).toEqual(resets.map(() => sent));
    expect(resets.length).toBeGreaterThan(0);
  });

  it('a reset answering STOP_SENDING also announces what was sent', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(0, 0, bytes(1))]);
    conn.writeStream(0, bytes(2_000_000));
    arena.advance(50);
    const sent = highestReceived(peer, 0);
    expect(sent).toBeGreaterThan(0);
    arena.send(peer, [F.stopSending(0, 9)]);
    arena.advance(50);
    const reset = peer.framesOf('reset_stream').find((f) => f.id === 0);
    expect(reset).toEqual({ type: 'reset_stream', id: 0, code: 9, finalSize: sent });
    expectAlive(arena, conn);
  });
});

describe('2. stopSending(): STOP_SENDING leaves, later data is counted (RFC 9000 §3.5, §4.5)', () => {
  it('on a bidi stream whose sending half is already acknowledged, STOP_SENDING is sent', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(0, 0, bytes(10))]);
    conn.writeStream(0, bytes(5, 0x62));
    conn.finishStream(0);
    arena.pump();
    ackAll(arena, peer);
    conn.stopSending(0, 5);
    arena.pump();
    expect(peer.framesOf('stop_sending')).toEqual([{ type: 'stop_sending', id: 0, code: 5 }]);
  });

  it('on a receive-only (peer uni) stream, STOP_SENDING is sent', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10))]);
    conn.stopSending(2, 6);
    arena.pump();
    expect(peer.framesOf('stop_sending')).toEqual([{ type: 'stop_sending', id: 2, code: 6 }]);
  });

  it('a lost STOP_SENDING is sent again until the peer resets the stream', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10))]);
    conn.stopSending(2, 6);
    arena.pump();
    const lostPn = peer.frames.find((f) => f.frame.type === 'stop_sending')!.pn;
    // Three later packets are acknowledged and that one is not: it was lost (RFC 9002 §6.1.1).
    const other = conn.openStream('bi')!;
    for (let i = 0; i < 4; i++) {
      conn.writeStream(other, bytes(100));
      arena.advance(30);
    }
    ackAllBut(arena, peer, lostPn);
    arena.advance(30);
    const count = peer.framesOf('stop_sending').length;
    expect(count).toBeGreaterThan(1);
    // Reset Recvd: no more STOP_SENDING after it (the stream is done).
    arena.send(peer, [F.resetStream(2, 6, 10), peer.ackFrame('app')!]);
    arena.advance(3_000);
    expect(peer.framesOf('stop_sending').length).toBe(count);
    expectAlive(arena, conn);
  });

  it('data arriving after STOP_SENDING still returns connection credit (no MAX_DATA deadlock with a 64 KiB window)', () => {
    const window = 64 * 1024;
    const arena = new Arena({ settings: { receiveWindow: window, maxReceiveWindow: window } });
    const { peer, conn } = arena.handshake();
    let total = 0;
    // Two streams, each stopped by the application after its first byte while the peer,
    // which has not seen STOP_SENDING yet, keeps sending 40,000 bytes on it: 80,002 bytes,
    // more than the 64 KiB window, so the peer needs MAX_DATA for the second stream.
    for (const id of [2, 6]) {
      arena.send(peer, [F.stream(id, 0, bytes(1))]);
      total += 1;
      conn.stopSending(id, 1);
      arena.pump();
      for (let off = 1; off < 40_001; off += 1000) {
        const n = Math.min(1000, 40_001 - off);
        arena.send(peer, [F.stream(id, off, bytes(n))]);
        total += n;
      }
      ackAll(arena, peer);
    }
    const maxData = Math.max(0, ...peer.framesOf('max_data').map((f) => f.max));
    // All 80,002 bytes were discarded: the whole window is open beyond them again.
    expect(maxData).toBeGreaterThanOrEqual(total + window / 2);
    expectAlive(arena, conn);
  });

  it('credit is not given twice for a stopped stream the peer then resets', () => {
    const window = 64 * 1024;
    const arena = new Arena({ settings: { receiveWindow: window, maxReceiveWindow: window } });
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(1000))]);
    for (let off = 1000; off < 40_000; off += 1000) arena.send(peer, [F.stream(2, off, bytes(1000))]);
    conn.stopSending(2, 1);
    arena.send(peer, [F.resetStream(2, 1, 40_000)]);
    ackAll(arena, peer);
    const maxData = Math.max(0, ...peer.framesOf('max_data').map((f) => f.max));
    // 40,000 consumed: MAX_DATA = 40,000 + window, not 80,000 + window.
    expect(maxData).toBe(40_000 + window);
    expectAlive(arena, conn);
  });
});

// ---------------------------------------------------------------- client side (items 3, 4)

interface Wire {
  now: number;
  client: QuicEndpoint;
  server: QuicEndpoint;
  serverKey: Uint8Array;
  /** Every datagram the client sent, in order. */
  fromClient: Uint8Array[];
}

const CLIENT: PathAddr = { key: 'client' };
const SERVER: PathAddr = { key: 'server' };

function wire(): Wire {
  const serverSecret = SecretKey.generate();
  return {
    now: 1_000_000,
    client: new QuicEndpoint({ provider: nodeCryptoProvider, secretKey: SecretKey.generate().toBytes() }),
    server: new QuicEndpoint({ provider: nodeCryptoProvider, secretKey: serverSecret.toBytes(), alpns: [TEST_ALPN] }),
    serverKey: serverSecret.public().toBytes(),
    fromClient: [],
  };
}

/** Move datagrams both ways until both are quiet; `drop(i)` drops the client's i-th datagram. */
function exchange(w: Wire, drop: (i: number) => boolean = () => false): void {
  for (let round = 0; round < 50; round++) {
    let moved = false;
    for (let t = w.client.pollTransmit(w.now); t; t = w.client.pollTransmit(w.now)) {
      const i = w.fromClient.push(t.data.slice()) - 1;
      if (!drop(i)) w.server.handleDatagram(w.now, CLIENT, t.data);
      moved = true;
    }
    for (let t = w.server.pollTransmit(w.now); t; t = w.server.pollTransmit(w.now)) {
      w.client.handleDatagram(w.now, SERVER, t.data);
      moved = true;
    }
    if (!moved) return;
  }
}

/** Run the client's timers (only) until `ms` of virtual time have passed. */
function advanceClient(w: Wire, ms: number, onDatagram: (d: Uint8Array) => void): void {
  const end = w.now + ms * 1000;
  for (;;) {
    const t = w.client.pollTimeout();
    if (t === undefined || t > end) break;
    w.now = Math.max(w.now, t);
    w.client.handleTimeout(w.now);
    for (let d = w.client.pollTransmit(w.now); d; d = w.client.pollTransmit(w.now)) onDatagram(d.data.slice());
  }
  w.now = end;
}

/** The frames of the Initial packets in a client datagram (decrypted with the keys of `dcid`). */
function clientInitialFrames(datagram: Uint8Array, dcid: Uint8Array): Frame[] | undefined {
  const keys = initialKeys(nodeCryptoProvider, dcid, 'server').remote;
  const header = parseHeader(datagram, 0, 8);
  if (header.form !== 'long' || header.type !== 'initial') return undefined;
  const packet = datagram.slice(header.start, header.end);
  const pnOffset = header.pnOffset - header.start;
  const hp = unprotectHeader(packet, pnOffset, keys.header)!;
  const pn = decodePacketNumber(-1, hp.truncatedPn, hp.pnLength * 8);
  const payload = keys.open(pn, packet.subarray(0, pnOffset + hp.pnLength), packet.subarray(pnOffset + hp.pnLength));
  if (payload === null) throw new Error('client Initial did not decrypt');
  const r = new ByteReader(payload);
  const frames: Frame[] = [];
  while (!r.done) frames.push(decodeFrame(r).frame);
  return frames;
}

describe('3. a client datagram carrying an Initial is ≥ 1200 bytes, closes included (RFC 9000 §14.1)', () => {
  it('a handshake aborted on the wrong server key sends its CONNECTION_CLOSE in a padded datagram', () => {
    const w = wire();
    const wrongKey = SecretKey.generate().public().toBytes();
    const client = w.client.connect(w.now, SERVER, { serverKey: wrongKey, alpn: TEST_ALPN });
    exchange(w);
    expect(client.closeError?.code).toBe('ERR_TLS_PEER_ID_MISMATCH');
    const initials = w.fromClient.filter((d) => (d[0]! & 0xb0) === 0x80 && ((d[0]! >> 4) & 0x03) === 0);
    expect(initials.length).toBeGreaterThanOrEqual(2); // the ClientHello and the close
    for (const d of initials) expect(d.length).toBeGreaterThanOrEqual(1200);
    // The server read the close: its connection ended with the client's TLS alert.
    const serverConn = w.server.connections[0] as Connection | undefined;
    expect(serverConn?.closeError?.remote).toBe(true);
    expect(serverConn?.closeError?.transportCode).toBe(0x100 + 42); // bad_certificate
  });
});

describe('4. every PTO probe of a client Initial carries the ClientHello (RFC 9002 §6.2.4)', () => {
  it('the first datagram and both probe datagrams each carry CRYPTO from offset 0', () => {
    const w = wire();
    const client = w.client.connect(w.now, SERVER, { serverKey: w.serverKey, alpn: TEST_ALPN });
    const sent: Uint8Array[] = [];
    for (let t = w.client.pollTransmit(w.now); t; t = w.client.pollTransmit(w.now)) sent.push(t.data.slice());
    // Nothing arrives: the PTO fires and sends its two probes (and the next PTO two more).
    advanceClient(w, 5_000, (d) => sent.push(d));
    expect(sent.length).toBeGreaterThanOrEqual(3);
    for (const [i, d] of sent.entries()) {
      expect(d.length, `datagram ${i}`).toBeGreaterThanOrEqual(1200);
      const frames = clientInitialFrames(d, client.originalDcid);
      const crypto = frames?.filter((f): f is Extract<Frame, { type: 'crypto' }> => f.type === 'crypto') ?? [];
      expect(crypto.some((f) => f.offset === 0 && f.data.length > 0), `datagram ${i} carries the ClientHello`).toBe(true);
    }
  });

  it('with the ClientHello and the first probe lost, the handshake completes from the second probe', () => {
    const w = wire();
    const client = w.client.connect(w.now, SERVER, { serverKey: w.serverKey, alpn: TEST_ALPN });
    exchange(w, (i) => i < 2);
    for (let i = 0; i < 20 && client.state !== 'established'; i++) {
      const t = Math.min(w.client.pollTimeout() ?? Infinity, w.server.pollTimeout() ?? Infinity);
      if (!Number.isFinite(t)) break;
      w.now = Math.max(w.now, t);
      w.client.handleTimeout(w.now);
      w.server.handleTimeout(w.now);
      exchange(w, (i) => i < 2);
    }
    expect(client.state).toBe('established');
    // The server answered the first datagram that reached it, the second probe: it carried the ClientHello.
    const third = clientInitialFrames(w.fromClient[2]!, client.originalDcid)!;
    expect(third.some((f) => f.type === 'crypto' && f.offset === 0)).toBe(true);
  });
});

// ---------------------------------------------------------------- RFC 9000 §19 frames against stream states

describe('RFC 9000 §3, §4.5, §19: frames against stream states (beyond frames.test.ts)', () => {
  const E = { STREAM_LIMIT_ERROR: 0x04, STREAM_STATE_ERROR: 0x05, FINAL_SIZE_ERROR: 0x06, FLOW_CONTROL_ERROR: 0x03 };

  it('a second RESET_STREAM with another final size → FINAL_SIZE_ERROR (§4.5)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10))]);
    arena.send(peer, [F.resetStream(2, 1, 10)]);
    expectAlive(arena, conn);
    arena.send(peer, [F.resetStream(2, 1, 11)]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR, 0x04);
  });

  it('a repeated RESET_STREAM with the same final size is accepted (a retransmission)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10))]);
    arena.send(peer, [F.resetStream(2, 1, 10)]);
    arena.send(peer, [F.resetStream(2, 1, 10)]);
    expectAlive(arena, conn);
  });

  it('STREAM data beyond the final size a RESET_STREAM gave → FINAL_SIZE_ERROR (§4.5)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10))]);
    arena.send(peer, [F.resetStream(2, 1, 10)]);
    arena.send(peer, [F.stream(2, 10, bytes(5))]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR);
  });

  it('RESET_STREAM after the FIN and all data arrived, with the same final size, is accepted', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10), true)]);
    arena.send(peer, [F.resetStream(2, 1, 10)]);
    expectAlive(arena, conn);
  });

  it('STREAM_DATA_BLOCKED beyond MAX_STREAMS → STREAM_LIMIT_ERROR (§4.6)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.streamDataBlocked(400, 0)]);
    expectClosedWith(arena, conn, peer, E.STREAM_LIMIT_ERROR, 0x15);
  });

  it('STREAM_DATA_BLOCKED for a local bidi stream not yet opened → STREAM_STATE_ERROR', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.streamDataBlocked(1, 0)]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x15);
  });

  it('STREAM_DATA_BLOCKED opens the peer’s stream and every lower one of its type (§3.2)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.streamDataBlocked(8, 0)]);
    const opened: number[] = [];
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) if (e.type === 'stream-opened') opened.push(e.id);
    expect(opened).toEqual([0, 4, 8]);
    expectAlive(arena, conn);
  });

  it('MAX_STREAM_DATA and STOP_SENDING beyond MAX_STREAMS → STREAM_LIMIT_ERROR (§4.6)', () => {
    for (const frame of [F.maxStreamData(400, 10), F.stopSending(400, 1)]) {
      const arena = new Arena();
      const { peer, conn } = arena.handshake();
      arena.send(peer, [frame]);
      expectClosedWith(arena, conn, peer, E.STREAM_LIMIT_ERROR);
    }
  });

  it('STOP_SENDING opens a peer bidi stream not yet seen and is answered with RESET_STREAM of final size 0 (§3.5, §19.5)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stopSending(4, 3)]);
    arena.advance(50);
    expect(peer.framesOf('reset_stream')).toEqual([{ type: 'reset_stream', id: 4, code: 3, finalSize: 0 }]);
    expectAlive(arena, conn);
  });

  it('MAX_STREAM_DATA on a peer bidi stream not yet seen opens it (§19.10)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.maxStreamData(4, 5000)]);
    const opened: number[] = [];
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) if (e.type === 'stream-opened') opened.push(e.id);
    expect(opened).toEqual([0, 4]);
    expect(conn.writeStream(4, bytes(10))).toBe(10);
    expectAlive(arena, conn);
  });

  it('STREAM on a peer stream already finished and forgotten is ignored, not reopened', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10), true)]);
    while (!conn.readStream(2).fin) {
      // read it all
    }
    arena.send(peer, [F.stream(2, 0, bytes(10), true)]);
    const opened: number[] = [];
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) if (e.type === 'stream-opened') opened.push(e.id);
    expect(opened).toEqual([2]);
    expect(conn.isReadable(2)).toBe(false);
    expectAlive(arena, conn);
  });

  it('after STOP_SENDING, the stream window is still enforced: data beyond MAX_STREAM_DATA → FLOW_CONTROL_ERROR', () => {
    const arena = new Arena({ settings: { streamReceiveWindow: 10_000 } });
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(2, 0, bytes(10))]);
    conn.stopSending(2, 1);
    arena.send(peer, [F.stream(2, 9_000, bytes(2_000))]);
    expectClosedWith(arena, conn, peer, E.FLOW_CONTROL_ERROR);
  });

  it('after STOP_SENDING, while data is still missing, a final size that changes → FINAL_SIZE_ERROR', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [F.stream(6, 0, bytes(10))]);
    conn.stopSending(6, 1);
    // Size Known with a gap at [10, 15): the stream is kept, so the change is seen.
    arena.send(peer, [F.stream(6, 15, bytes(5), true)]);
    expectAlive(arena, conn);
    arena.send(peer, [F.stream(6, 15, bytes(6), true)]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR);
  });
});
