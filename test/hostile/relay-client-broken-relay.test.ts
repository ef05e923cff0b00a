/**
 * The relay client against hostile or broken relays (shared/docs/reliability.md §5.F), each a
 * small fake relay on a real socket that misbehaves in one way. In every case the client
 * reports the reason as a typed error, reconnects on the backoff schedule (jitter fixed here,
 * so the delays it reports are exact), and nothing escapes into the event loop.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { RelayClient, type RelayClientEvents } from '../../src/relay/client/index.ts';
import { encodeHealth, encodePingPong, encodeServerChallenge, encodeServerConfirmsAuth, encodeServerDeniesAuth, FrameType } from '../../src/relay/protocol/index.ts';
import { failOnEscapes, until } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An unmasked server→client WebSocket frame (RFC 6455 §5.2). */
function wsFrame(payload: Uint8Array, opcode = 2): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127]), Buffer.from(new BigUint64Array([BigInt(n)]).buffer).reverse()]);
  return Buffer.concat([head, payload]);
}

interface FakeConn {
  socket: Socket;
  /** Client frames received after the upgrade (unmasked payloads). */
  frames: Uint8Array[];
}

/**
 * A fake relay: reads the upgrade request and hands the socket to `behave`, which writes what
 * it likes. `respond101` writes a correct 101 (optionally without the subprotocol).
 */
async function fakeRelay(behave: (conn: FakeConn, respond101: (opts?: { protocol?: string | null }) => void, request: string) => void): Promise<{ url: string; attempts: () => number }> {
  let attempts = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    attempts++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const conn: FakeConn = { socket, frames: [] };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const request = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        upgraded = true;
        const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1] ?? '';
        const respond101 = (opts: { protocol?: string | null } = {}): void => {
          const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
          const protocol = opts.protocol === undefined ? 'iroh-relay-v2' : opts.protocol;
          socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${protocol === null ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`}\r\n`);
        };
        behave(conn, respond101, request);
      }
      // Parse masked client frames (small ones are enough here).
      while (buf.length >= 2) {
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) return;
        if (buf.length < off + 4 + len) return;
        const mask = buf.subarray(off, off + 4);
        const payload = Uint8Array.from(buf.subarray(off + 4, off + 4 + len), (b, i) => b ^ mask[i % 4]!);
        if ((buf[0]! & 0x0f) === 2) conn.frames.push(payload);
        // Answer a close frame as a relay would, so the client's close() completes promptly.
        if ((buf[0]! & 0x0f) === 8) socket.end(wsFrame(payload.subarray(0, 2), 8));
        buf = buf.subarray(off + 4 + len);
      }
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  cleanups.push(
    () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  );
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/`, attempts: () => attempts };
}

/** A client with a fixed jitter (random = 0.5) so reported delays follow the schedule exactly. */
function client(url: string, extra: Partial<ConstructorParameters<typeof RelayClient>[0]> = {}): RelayClient {
  const c = new RelayClient({
    url,
    secretKey: SecretKey.generate(),
    connectTimeoutMs: 300,
    backoff: { minMs: 10, maxMs: 80, random: () => 0.5 },
    ...extra,
  });
  cleanups.push(() => c.close());
  return c;
}

/** The delays of attempts 1, 2, … with random 0.5: base = min(80, 10·2^n), delay = round(0.75·base). */
const EXPECTED_DELAYS = [8, 15, 30, 60, 60, 60];

/** Start the client and collect `n` disconnect events. */
async function disconnects(c: RelayClient, n: number, timeoutMs = 10_000): Promise<Array<RelayClientEvents['disconnected']>> {
  const seen: Array<RelayClientEvents['disconnected']> = [];
  c.on('disconnected', (e) => seen.push(e));
  c.connect().catch(() => undefined);
  await until(() => seen.length >= n, `${n} disconnects`, timeoutMs);
  return seen.slice(0, n);
}

function expectBackoff(events: Array<RelayClientEvents['disconnected']>): void {
  expect(events.map((e) => e.reconnectInMs)).toEqual(EXPECTED_DELAYS.slice(0, events.length));
}

describe('relay client against a broken relay (reliability.md §5.F)', () => {
  it('missing subprotocol: a 101 without Sec-WebSocket-Protocol is refused (iroh BadVersionHeader), with backoff', async () => {
    const relay = await fakeRelay((_c, respond101) => respond101({ protocol: null }));
    const events = await disconnects(client(relay.url), 3);
    for (const e of events) {
      expect(e.error.code).toBe('ERR_RELAY_HANDSHAKE');
      expect(e.error.message).toMatch(/subprotocol/i);
      expect(e.wasConnected).toBe(false);
    }
    expectBackoff(events);
    expect(relay.attempts()).toBeGreaterThanOrEqual(3);
  });

  it('missing subprotocol: refused too over the WHATWG-WebSocket transport', async () => {
    const { standardWebSocketTransport } = await import('../../src/relay/client/index.ts');
    const relay = await fakeRelay((_c, respond101) => respond101({ protocol: null }));
    const events = await disconnects(client(relay.url, { transport: standardWebSocketTransport() }), 2);
    // The WHATWG API fails the connection itself and does not say why, so the code is
    // ERR_RELAY_CLOSED there; what matters is that it is refused and retried with backoff.
    for (const e of events) expect(['ERR_RELAY_HANDSHAKE', 'ERR_RELAY_CLOSED']).toContain(e.error.code);
    expectBackoff(events);
    expect(relay.attempts()).toBeGreaterThanOrEqual(2);
  });

  it('an unknown subprotocol is refused', async () => {
    const relay = await fakeRelay((_c, respond101) => respond101({ protocol: 'iroh-relay-v9' }));
    const [e] = await disconnects(client(relay.url), 1);
    expect(e!.error.code).toBe('ERR_RELAY_HANDSHAKE');
  });

  it('Health on v2: FrameNotAllowedInVersion ends the connection with ERR_RELAY_PROTOCOL, then reconnect', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerConfirmsAuth()));
      socket.write(wsFrame(encodeHealth('all is well?')));
    });
    const c = client(relay.url);
    let connected = 0;
    c.on('connected', () => connected++);
    const events = await disconnects(c, 3);
    for (const e of events) {
      expect(e.error.code).toBe('ERR_RELAY_PROTOCOL');
      expect(e.error.message).toMatch(/not allowed in protocol version 2/);
      expect(e.wasConnected).toBe(true);
    }
    // Short-lived connections do not reset the backoff: no tight reconnect loop.
    expectBackoff(events);
    expect(connected).toBe(3);
  });

  it('garbage: bytes that are not WebSocket framing after the 101 end the connection, then reconnect', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(Buffer.from([0x8f, 0x05, 1, 2, 3, 4, 5, 0xff, 0x00])); // reserved opcode 0xf
    });
    const events = await disconnects(client(relay.url), 2);
    for (const e of events) {
      expect(e.error.code).toBe('ERR_RELAY_PROTOCOL');
      expect(e.error.message).toMatch(/WebSocket/);
    }
    expectBackoff(events);
  });

  it('garbage: a well-framed message that is no relay frame fails the handshake', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(Uint8Array.of(0x2a, 0xde, 0xad, 0xbe, 0xef)));
    });
    const [e] = await disconnects(client(relay.url), 1);
    expect(e!.error.code).toBe('ERR_RELAY_HANDSHAKE');
    expect(e!.error.message).toMatch(/unknown frame type 42/);
  });

  it('garbage: an unknown frame type after authentication is a protocol error (iroh-wire §1.11b)', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerConfirmsAuth()));
      socket.write(wsFrame(Uint8Array.of(0x2a, 1)));
    });
    const [e] = await disconnects(client(relay.url), 1);
    expect(e!.error.code).toBe('ERR_RELAY_PROTOCOL');
  });

  it('stall: a relay that accepts TCP and never answers hits the connect timeout, then backoff', async () => {
    const relay = await fakeRelay(() => undefined);
    const events = await disconnects(client(relay.url, { connectTimeoutMs: 100 }), 2);
    for (const e of events) expect(e.error.code).toBe('ERR_RELAY_TIMEOUT');
    expectBackoff(events);
  });

  it('stall: a relay that upgrades but never sends the challenge hits the connect timeout', async () => {
    const relay = await fakeRelay((_c, respond101) => respond101());
    const [e] = await disconnects(client(relay.url, { connectTimeoutMs: 100 }), 1);
    expect(e!.error.code).toBe('ERR_RELAY_TIMEOUT');
    expect(e!.error.message).toMatch(/handshake/);
  });

  it('stall: a relay that stops answering pings is declared dead at the pong deadline, then reconnect', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerConfirmsAuth()));
    });
    const c = client(relay.url, { pingIntervalMs: 50, pongTimeoutMs: 100 });
    const [e] = await disconnects(c, 1);
    expect(e!.error.code).toBe('ERR_RELAY_TIMEOUT');
    expect(e!.error.message).toMatch(/ping/);
    expect(e!.wasConnected).toBe(true);
  });

  it('connection reset: a relay that resets the TCP connection is reported as ERR_RELAY_CLOSED, then backoff', async () => {
    const relay = await fakeRelay(({ socket }) => socket.resetAndDestroy());
    const events = await disconnects(client(relay.url), 3);
    for (const e of events) {
      expect(e.error.code).toBe('ERR_RELAY_CLOSED');
      expect(e.error.message).toMatch(/ECONNRESET|closed/);
    }
    expectBackoff(events);
  });

  it('connection reset: a reset after authentication ends the connection and the client reconnects', async () => {
    let n = 0;
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerConfirmsAuth()));
      if (++n === 1) setTimeout(() => socket.resetAndDestroy(), 20);
    });
    const c = client(relay.url);
    await c.connect();
    const e = await new Promise<RelayClientEvents['disconnected']>((res) => c.once('disconnected', res));
    expect(e.error.code).toBe('ERR_RELAY_CLOSED');
    expect(e.wasConnected).toBe(true);
    await until(() => c.state === 'connected', 'reconnected');
    expect(c.stats.connections).toBe(2);
  });

  it('an HTTP error instead of 101 is reported with its status', async () => {
    const relay = await fakeRelay(({ socket }) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
    const [e] = await disconnects(client(relay.url), 1);
    expect(e!.error.code).toBe('ERR_RELAY_HANDSHAKE');
    expect(e!.error.message).toMatch(/404/);
  });

  it('ServerDeniesAuth is reported with the relay’s reason as ERR_RELAY_DENIED, and retried with backoff', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerDeniesAuth('fleet members only')));
    });
    const events = await disconnects(client(relay.url), 2);
    for (const e of events) {
      expect(e.error.code).toBe('ERR_RELAY_DENIED');
      expect(e.error.message).toMatch(/fleet members only/);
    }
    expectBackoff(events);
  });

  it('a challenge of the wrong length fails the handshake', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerChallenge(new Uint8Array(16)).subarray(0, 9)));
    });
    const [e] = await disconnects(client(relay.url), 1);
    expect(e!.error.code).toBe('ERR_RELAY_HANDSHAKE');
  });

  it('a message over the size limit is refused (ERR_RELAY_PROTOCOL)', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerConfirmsAuth()));
      socket.write(wsFrame(new Uint8Array(70_000)));
    });
    const [e] = await disconnects(client(relay.url, { maxMessageBytes: 65_600 }), 1);
    expect(e!.error.code).toBe('ERR_RELAY_PROTOCOL');
  });

  it('a relay that accepts and drops every connection at once gets capped backoff, and reconnects are counted (§5.F.4)', async () => {
    const relay = await fakeRelay(({ socket }, respond101) => {
      respond101();
      socket.write(wsFrame(encodeServerConfirmsAuth()));
      socket.end();
    });
    const c = client(relay.url);
    const events = await disconnects(c, 6);
    expectBackoff(events);
    // Capped: the last delays are the maximum, not growing further.
    expect(events.at(-1)!.reconnectInMs).toBe(60);
    expect(c.stats.connectAttempts).toBeGreaterThanOrEqual(6);
    expect(c.stats.disconnects).toBeGreaterThanOrEqual(6);
  });

  it('answers the relay’s Ping at once with the same bytes (iroh-wire §1.6)', async () => {
    let conn: FakeConn | undefined;
    const relay = await fakeRelay((c, respond101) => {
      conn = c;
      respond101();
      c.socket.write(wsFrame(encodeServerChallenge(new Uint8Array(16))));
    });
    const c = client(relay.url);
    c.connect().catch(() => undefined);
    await until(() => (conn?.frames.length ?? 0) >= 1, 'ClientAuth');
    expect(conn!.frames[0]![0]).toBe(FrameType.ClientAuth);
    conn!.socket.write(wsFrame(encodeServerConfirmsAuth()));
    conn!.socket.write(wsFrame(encodePingPong(FrameType.Ping, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8))));
    await until(() => conn!.frames.some((f) => f[0] === FrameType.Pong), 'Pong');
    const pong = conn!.frames.find((f) => f[0] === FrameType.Pong)!;
    expect(Array.from(pong)).toEqual([FrameType.Pong, 1, 2, 3, 4, 5, 6, 7, 8]);
    // And the client pinged right after connecting (iroh-wire §1.7).
    expect(conn!.frames.some((f) => f[0] === FrameType.Ping)).toBe(true);
  });

  it('a listener that throws does not break the client or escape into the event loop', async () => {
    const relay = await fakeRelay(({ socket }) => socket.destroy());
    const listenerErrors: unknown[] = [];
    const c = client(relay.url, { onListenerError: (err) => listenerErrors.push(err) });
    c.on('disconnected', () => {
      throw new Error('listener bug');
    });
    await disconnects(c, 2);
    expect(listenerErrors.length).toBeGreaterThanOrEqual(2);
  });

  it('queued datagrams older than maxQueuedAgeMs are dropped and counted, never kept', async () => {
    const relay = await fakeRelay(({ socket }) => socket.destroy());
    const c = client(relay.url, { maxQueuedAgeMs: 20, sendQueueDepth: 4 });
    const dst = SecretKey.generate().public();
    for (let i = 0; i < 6; i++) c.send(dst, new Uint8Array(100));
    expect(c.stats.dropsQueueFull).toBe(2);
    await until(() => c.stats.dropsExpired === 4, 'queued datagrams to expire');
    await c.close();
    expect(c.state).toBe('closed');
    expect(c.send(dst, new Uint8Array(1))).toBe('dropped');
    expect(c.stats.dropsClosed).toBe(1);
  });
});
