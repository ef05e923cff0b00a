// sdnet in a browser tab: a relay-only endpoint that echoes bytes with an iroh or sdnet peer.
// The stream protocol (on each bidirectional stream): one command byte, then data, then FIN —
// 'e' = echo the data back, 'h' = answer the SHA-256 of the data.
import { Endpoint, EndpointAddr, EndpointTicket, PublicKey } from './sdnet.min.js';

export const ALPN = 'sdnet/relay-test/0';
const E = 0x65;

/** A relay-only endpoint whose home relay is `relay` (default: the relay serving this page). */
export async function bind({ relay = location.origin, alpns = [ALPN] } = {}) {
  const ep = await Endpoint.bind({ relays: [relay], alpns });
  await ep.online({ signal: AbortSignal.timeout(60_000) });
  return ep;
}

/** An EndpointAddr from a ticket (`endpoint…`) or from an id and a relay URL. */
export function address(target, relay) {
  if (target.startsWith('endpoint')) return EndpointTicket.parse(target).addr;
  return EndpointAddr.from({ id: PublicKey.fromString(target), relayUrls: [relay ?? location.origin] });
}

async function sha256Hex(chunks) {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function randomChunk(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

/**
 * Send `bytes` random bytes with the echo command on a new stream of `conn`, reading the echo
 * while writing; resolves with both hashes and the time taken.
 */
export async function echoBytes(conn, bytes, chunkSize = 64 * 1024) {
  const started = performance.now();
  const bi = await conn.openBi();
  const writer = bi.writable.getWriter();
  const reader = bi.readable.getReader();
  const received = [];
  let receivedBytes = 0;
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      received.push(value.slice());
      receivedBytes += value.length;
    }
  })();
  const sent = [];
  await writer.write(Uint8Array.of(E));
  for (let off = 0; off < bytes; off += chunkSize) {
    const chunk = randomChunk(Math.min(chunkSize, bytes - off));
    sent.push(chunk);
    await writer.write(chunk);
  }
  await writer.close();
  await reading;
  const ms = performance.now() - started;
  return { bytes, receivedBytes, sentHash: await sha256Hex(sent), echoedHash: await sha256Hex(received), ms };
}

/** Dial `target` (ticket, or id with `relay`) and echo `bytes` bytes. */
export async function dialAndEcho(ep, target, { relay, bytes = 4 * 1024 * 1024, alpn = ALPN } = {}) {
  const conn = await ep.connect(address(target, relay), alpn, { signal: AbortSignal.timeout(60_000) });
  try {
    return await echoBytes(conn, bytes);
  } finally {
    conn.close(0, 'done');
  }
}

/** Echo every stream of every incoming connection, chunk by chunk, until the endpoint closes. */
export async function serveEcho(ep, onConnection = () => {}) {
  for await (const incoming of ep.accept()) {
    void (async () => {
      const conn = await incoming.accept();
      onConnection(conn);
      for (;;) {
        let bi;
        try {
          bi = await conn.acceptBi();
        } catch {
          return;
        }
        void (async () => {
          const reader = bi.readable.getReader();
          const writer = bi.writable.getWriter();
          let first = true;
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            const data = first ? value.subarray(1) : value;
            first = false;
            if (data.length > 0) await writer.write(data.slice());
          }
          await writer.close();
        })().catch(() => {});
      }
    })().catch(() => {});
  }
}
