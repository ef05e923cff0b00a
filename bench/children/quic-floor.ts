/**
 * Child of `bench/quic.ts`: the floor of a pure-TS QUIC data path (perf-anchors.md §3.6),
 * through sdnet's own crypto provider.
 *
 * Sender, per datagram: a 13-byte 1-RTT short header (flags, 8-byte DCID, 4-byte packet
 * number), AES-128-GCM seal of the payload with nonce = IV ⊕ PN
 * (`nodeCryptoProvider.aead`), AES header protection from the pre-expanded key
 * (`nodeCryptoProvider.headerProtection`), then `send([header, ciphertext‖tag])` on a
 * connected socket, `BATCH` datagrams per event-loop turn. Receiver, per datagram: remove
 * header protection, open, count. No ACKs, loss recovery, congestion control or streams:
 * real QUIC can only be slower.
 *
 * Usage:
 *   node quic-floor.ts recv <maxSeconds>                  prints {"ready":true,"port":…}, then the result
 *   node quic-floor.ts send <port> <datagramBytes> <seconds>
 */
import dgram from 'node:dgram';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { emit, fail, finish, round, runMain } from './common.ts';

const HEADER = 1 + 8 + 4;
const PN_OFFSET = 1 + 8;
const TAG = 16;
const SAMPLE = 16;
const BATCH = 32;
const SOCKET_BUFFER = 4 << 20;

// Fixed secrets, so both processes hold the same keys without a handshake.
const aead = nodeCryptoProvider.aead('aes-128-gcm', new Uint8Array(16).fill(1));
const hp = nodeCryptoProvider.headerProtection('aes-128', new Uint8Array(16).fill(2));
const iv = new Uint8Array(12).fill(3);
const nonce = new Uint8Array(12);
const dcid = new Uint8Array(8).fill(7);

/** RFC 9001 §5.3: the IV XOR the packet number (below 2^32 here), left-padded. */
function nonceFor(pn: number): Uint8Array {
  nonce.set(iv);
  nonce[8]! ^= pn >>> 24;
  nonce[9]! ^= (pn >>> 16) & 0xff;
  nonce[10]! ^= (pn >>> 8) & 0xff;
  nonce[11]! ^= pn & 0xff;
  return nonce;
}

function receive(maxSeconds: number): void {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER });
  let packets = 0;
  let bytes = 0;
  let bad = 0;
  let first = 0;
  let last = 0;
  const done = (): never => {
    const seconds = (last - first) / 1000;
    socket.close();
    if (packets === 0 || seconds <= 0) fail(new Error(`receiver got ${packets} packets`));
    return finish({
      rxPackets: packets,
      bad,
      rxKpps: round(packets / seconds / 1e3, 1),
      goodputMBps: round(bytes / seconds / 1e6, 1),
      seconds: round(seconds, 2),
    });
  };
  socket.on('message', (m) => {
    const now = performance.now();
    if (packets === 0 && bad === 0) first = now;
    last = now;
    const mask = hp.mask(m.subarray(HEADER, HEADER + SAMPLE));
    m[0]! ^= mask[0]! & 0x1f;
    let pn = 0;
    for (let i = 0; i < 4; i++) {
      m[PN_OFFSET + i]! ^= mask[1 + i]!;
      pn = pn * 256 + m[PN_OFFSET + i]!;
    }
    const plaintext = aead.open(nonceFor(pn), m.subarray(0, HEADER), m.subarray(HEADER));
    if (plaintext === null) {
      bad++;
      return;
    }
    packets++;
    bytes += plaintext.length;
  });
  socket.on('error', fail);
  socket.bind(0, '127.0.0.1', () => {
    emit({ ready: true, port: socket.address().port, recvBufferSize: socket.getRecvBufferSize() });
    const started = performance.now();
    // Done once the flow stopped for 300 ms, or at the deadline.
    setInterval(() => {
      const now = performance.now();
      if ((packets > 0 && now - last > 300) || now - started > maxSeconds * 1000) done();
    }, 50);
  });
}

function send(port: number, size: number, seconds: number): void {
  const payload = new Uint8Array(size - HEADER - TAG).fill(0x61);
  const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: SOCKET_BUFFER });
  socket.on('error', fail);
  let pn = 0;
  socket.connect(port, '127.0.0.1', () => {
    const start = performance.now();
    const end = start + seconds * 1000;
    const tick = (): void => {
      for (let k = 0; k < BATCH; k++) {
        // A fresh header per datagram: a queued send keeps a reference to it.
        const header = Buffer.allocUnsafe(HEADER);
        header[0] = 0x43; // short header, fixed bit, 4-byte packet number
        header.set(dcid, 1);
        header.writeUInt32BE(pn, PN_OFFSET);
        const sealed = aead.seal(nonceFor(pn), header, payload);
        // The sample starts 4 bytes after the packet number's start: the first ciphertext byte.
        const mask = hp.mask(sealed.subarray(0, SAMPLE));
        header[0]! ^= mask[0]! & 0x1f;
        for (let i = 0; i < 4; i++) header[PN_OFFSET + i]! ^= mask[1 + i]!;
        socket.send([header, sealed]);
        pn++;
      }
      if (performance.now() < end) {
        setImmediate(tick);
        return;
      }
      const elapsed = (performance.now() - start) / 1000;
      setTimeout(() => {
        socket.close();
        finish({ txPackets: pn, txKpps: round(pn / elapsed / 1e3, 1), seconds: round(elapsed, 2) });
      }, 50);
    };
    tick();
  });
}

runMain(async () => {
  const [role, a, b, c] = process.argv.slice(2);
  if (role === 'recv') receive(Number(a ?? 10));
  else if (role === 'send') send(Number(a), Number(b), Number(c));
  else throw new Error(`unknown role ${role}`);
});
