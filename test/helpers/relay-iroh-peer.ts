/**
 * A real iroh 1.0 endpoint (`@number0/iroh`) whose only relay is a given relay URL, with the
 * two halves of the interop scenario (shared/docs/iroh-wire.md §1.10):
 *
 * - `serve`: go online, accept connections; on each bidirectional stream read a one-byte
 *   command: `e` echoes the rest back, `h` answers the SHA-256 of the rest;
 * - `dial`: go online, dial a peer by EndpointId + relay URL only, echo a message, send N
 *   random bytes and compare the peer's hash with our own.
 *
 * Used in-process (import the functions) or as a child process in a network namespace:
 * `node relay-iroh-peer.ts serve <relayUrl>` prints `{"event":"online","id":…}`;
 * `node relay-iroh-peer.ts dial <relayUrl> <peerId> <bytes>` prints `{"event":"result",…}`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import iroh from '@number0/iroh';

export const ALPN = Array.from(new TextEncoder().encode('sdnet/relay-test/0'));

/** Bind an endpoint (minimal preset) whose relay map holds only `relayUrl`, without QAD. */
export async function bindEndpoint(relayUrl: string): Promise<iroh.Endpoint> {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  const map = iroh.RelayMap.empty();
  // iroh-wire §1.10: insert({url}) without quicPort: no QAD probe for this relay.
  map.insert({ url: relayUrl });
  b.relayMode(iroh.RelayMode.custom(map));
  b.alpns([ALPN]);
  return b.bind();
}

async function readAll(recv: iroh.RecvStream, onChunk: (c: Uint8Array) => void): Promise<void> {
  for (;;) {
    const chunk = await recv.read(256 * 1024);
    if (chunk.length === 0) return;
    onChunk(Uint8Array.from(chunk));
  }
}

/** Serve echo/hash streams on every incoming connection until the endpoint closes. */
export async function serve(ep: iroh.Endpoint): Promise<void> {
  for (;;) {
    const incoming = await ep.acceptNext();
    if (incoming === null) return;
    void (async () => {
      const conn = await (await incoming.accept()).connect();
      for (;;) {
        let bi: iroh.BiStream;
        try {
          bi = await conn.acceptBi();
        } catch {
          return;
        }
        void (async () => {
          const cmd = await bi.recv.readExact(1);
          if (cmd[0] === 0x65 /* e */) {
            const rest: number[] = [];
            await readAll(bi.recv, (c) => rest.push(...c));
            await bi.send.writeAll(rest);
          } else {
            const h = createHash('sha256');
            await readAll(bi.recv, (c) => h.update(c));
            await bi.send.writeAll(Array.from(h.digest()));
          }
          await bi.send.finish();
        })().catch(() => undefined);
      }
    })().catch(() => undefined);
  }
}

export interface DialResult {
  event: 'result';
  echo: string;
  bytes: number;
  sentHash: string;
  peerHash: string;
  /** iroh's view of the paths of the connection after the transfer. */
  paths: Array<{ isRelay: boolean; isSelected: boolean; remoteAddr: string; udpTxBytes: number; udpRxBytes: number }>;
}

/** Dial `peerId` through `relayUrl` only, echo a message, then send `bytes` random bytes and compare hashes. */
/**
 * Dial `peerId` through the relay, echo, then send `bytes` hashed. With `beforeBulk`, the echo
 * is followed by waiting (up to `directWithinMs`) for iroh to select a direct path, then the hook.
 */
export async function dial(ep: iroh.Endpoint, relayUrl: string, peerId: string, bytes: number, beforeBulk?: { directWithinMs: number; hook: () => Promise<void> }): Promise<DialResult> {
  const addr = new iroh.EndpointAddr(iroh.EndpointId.fromString(peerId), relayUrl, []);
  const conn = await ep.connect(addr, ALPN);
  const message = 'hello through the sdnet relay';
  const echoStream = await conn.openBi();
  await echoStream.send.writeAll([0x65, ...new TextEncoder().encode(message)]);
  await echoStream.send.finish();
  const echoed = new TextDecoder().decode(Uint8Array.from(await echoStream.recv.readToEnd(1024)));
  if (beforeBulk !== undefined) {
    const deadline = Date.now() + beforeBulk.directWithinMs;
    while (!conn.paths().some((p) => p.isSelected && !p.isRelay)) {
      if (Date.now() > deadline) throw new Error(`iroh selected no direct path within ${beforeBulk.directWithinMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await beforeBulk.hook();
  }

  const bulk = await conn.openBi();
  await bulk.send.writeAll([0x68 /* h */]);
  const hash = createHash('sha256');
  const chunk = 64 * 1024;
  for (let sent = 0; sent < bytes; sent += chunk) {
    const part = randomBytes(Math.min(chunk, bytes - sent));
    hash.update(part);
    await bulk.send.writeAll(Array.from(part));
  }
  await bulk.send.finish();
  const peerHash = Buffer.from(await bulk.recv.readToEnd(64)).toString('hex');
  const paths = conn.paths().map((p) => ({ isRelay: p.isRelay, isSelected: p.isSelected, remoteAddr: p.remoteAddr, udpTxBytes: p.stats.udpTxBytes, udpRxBytes: p.stats.udpRxBytes }));
  conn.close(0n, []);
  return { event: 'result', echo: echoed, bytes, sentHash: hash.digest('hex'), peerHash, paths };
}

async function cli(argv: string[]): Promise<void> {
  const [role, relayUrl, peerId, bytes] = argv;
  if (relayUrl === undefined || (role !== 'serve' && role !== 'dial')) throw new Error('usage: relay-iroh-peer.ts serve|dial <relayUrl> [peerId bytes]');
  const ep = await bindEndpoint(relayUrl);
  await ep.online();
  console.log(JSON.stringify({ event: 'online', id: ep.id().toString(), addr: ep.addr().toString() }));
  if (role === 'serve') {
    // Runs until killed (or stdin closes).
    process.stdin.on('end', () => void ep.close().then(() => process.exit(0)));
    process.stdin.resume();
    await serve(ep);
    return;
  }
  const result = await dial(ep, relayUrl, peerId!, Number(bytes));
  console.log(JSON.stringify(result));
  await ep.close();
  process.exit(0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    console.log(JSON.stringify({ event: 'error', message: String(err) }));
    process.exit(1);
  });
}
