/**
 * Shared pieces of the relay tests: a relay on an ephemeral port with short timers, clients
 * with fast backoff, waiting for events, raw HTTP over a socket, and a guard that fails a test
 * if anything escapes into the event loop (reliability.md §5.L.1).
 */
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { SecretKey } from '../../src/identity/index.ts';
import { defaultCryptoProvider } from '../../src/transport/crypto/index.ts';
import { RelayClient, type RelayClientEvents, type RelayClientOptions } from '../../src/relay/client/index.ts';
import { FrameType, KeyCache, RelayClientConnection, type RelayClientConnectionEvent } from '../../src/relay/protocol/index.ts';
import { parsePrometheusText, startRelayServer, type RelayServerHandle, type RelayServerOptions } from '../../relay-server/src/index.ts';

/**
 * A relay on 127.0.0.1 with an ephemeral port, metrics on, and test-friendly timers. Every test
 * client comes from 127.0.0.1, so the per-address admission limits are off unless a test sets
 * them (the tests of those limits do, and run them at their defaults).
 */
export function startTestRelay(options: RelayServerOptions = {}): Promise<RelayServerHandle> {
  return startRelayServer({
    host: '127.0.0.1',
    port: 0,
    metrics: { port: 0 },
    rateLimit: false,
    ...options,
    limits: { handshakeTimeoutMs: 5_000, maxConnectionsPerIp: 0, maxHandshakingPerIp: 0, acceptRatePerIp: 0, ...options.limits },
    timing: { tickMs: 20, shutdownGraceMs: 500, ...options.timing },
  });
}

/** A relay client with fast backoff, for tests. */
export function testClient(relayUrl: string, options: Partial<RelayClientOptions> = {}): RelayClient {
  return new RelayClient({
    url: relayUrl,
    secretKey: options.secretKey ?? SecretKey.generate(),
    connectTimeoutMs: 2_000,
    backoff: { minMs: 5, maxMs: 200 },
    ...options,
  });
}

/** The next event of `type` (optionally matching `match`), or a rejection after `timeoutMs`. */
export function nextEvent<K extends keyof RelayClientEvents>(
  client: RelayClient,
  type: K,
  match: (e: RelayClientEvents[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<RelayClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no '${String(type)}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(type, (e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

/** Poll `predicate` until true (event-driven code without an event to wait on), or fail. */
export async function until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await predicate())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The relay's `/metrics`, parsed. */
export async function scrape(relay: RelayServerHandle): Promise<Map<string, number>> {
  const res = await fetch(relay.metricsUrl!);
  expect(res.status).toBe(200);
  return parsePrometheusText(await res.text());
}

/**
 * Fail the test if an exception or rejection escapes into the event loop while it runs
 * (reliability.md §5.L.1: in Node that would kill the process).
 */
export function failOnEscapes(): void {
  const escaped: unknown[] = [];
  const onError = (err: unknown): void => {
    escaped.push(err);
  };
  beforeAll(() => {
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
  });
  afterAll(() => {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  });
  afterEach(() => {
    const seen = escaped.splice(0);
    expect(seen.map(String)).toEqual([]);
  });
}

/** Send raw bytes to a host:port and collect everything until the peer closes (or `timeoutMs`). */
export function rawExchange(port: number, request: string | Uint8Array, timeoutMs = 3_000): Promise<{ response: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response, closed: false });
    }, timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d) => (response += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response, closed: true });
    });
  });
}

/** An upgrade request as iroh sends it (iroh-wire §1.2), with header overrides (undefined removes one). */
export function upgradeRequest(port: number, overrides: Record<string, string | undefined> = {}, path = '/relay'): string {
  const headers: Record<string, string | undefined> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    'sec-websocket-protocol': 'iroh-relay-v2, iroh-relay-v1',
    ...overrides,
  };
  let out = `GET ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out += `${k}: ${v}\r\n`;
  return `${out}\r\n`;
}

/**
 * A hand-driven relay client on a raw `ws` socket: the test decides exactly which frames go
 * out, and sees every frame and the close code.
 */
export class RawRelayClient {
  readonly ws: WebSocket;
  readonly secretKey: SecretKey;
  readonly received: Uint8Array[] = [];
  closeCode: number | undefined;
  closeReason = '';
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(relayUrl: string, options: { secretKey?: SecretKey; protocols?: string[]; headers?: Record<string, string>; localAddress?: string } = {}) {
    this.secretKey = options.secretKey ?? SecretKey.generate();
    const url = new URL(relayUrl);
    this.ws = new WebSocket(`ws://${url.host}/relay`, options.protocols ?? ['iroh-relay-v2', 'iroh-relay-v1'], {
      headers: options.headers,
      perMessageDeflate: false,
      localAddress: options.localAddress,
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (d: Buffer) => this.received.push(new Uint8Array(d)));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve(code);
      }),
    );
  }

  /** Wait until `n` frames have arrived; returns the n-th. */
  async frame(n: number, timeoutMs = 3_000): Promise<Uint8Array> {
    await until(() => this.received.length >= n || this.closeCode !== undefined, `frame ${n}`, timeoutMs);
    const f = this.received[n - 1];
    if (f === undefined) throw new Error(`connection closed (${this.closeCode}) before frame ${n}`);
    return f;
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  /** Complete the challenge handshake properly, using the sans-IO client state machine. */
  async authenticate(): Promise<void> {
    await this.opened;
    const conn = new RelayClientConnection({ secretKey: this.secretKey, version: this.ws.protocol === 'iroh-relay-v1' ? 1 : 2, crypto: defaultCryptoProvider, keys: new KeyCache(), now: 0 });
    let n = 0;
    for (;;) {
      const f = await this.frame(++n);
      conn.handleFrame(0, f);
      for (let t = conn.pollTransmit(); t !== undefined; t = conn.pollTransmit()) if (t[0] !== FrameType.Ping) this.send(t);
      const events: RelayClientConnectionEvent[] = [];
      for (let e = conn.pollEvent(); e !== undefined; e = conn.pollEvent()) events.push(e);
      if (events.some((e) => e.type === 'connected')) return;
      const closed = events.find((e) => e.type === 'closed');
      if (closed) throw closed.error;
    }
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Connect a raw TCP socket (for slowloris cases), optionally from another loopback address. */
export function rawSocket(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.on('error', reject);
  });
}

const MASK = [0x37, 0xfa, 0x21, 0x3d];

/** A client→relay WebSocket frame, hand-built: FIN, `opcode`, masked with a fixed key (RFC 6455 §5.3). */
export function maskedFrame(payload: Uint8Array, opcode = 2): Buffer {
  const n = payload.length;
  const head =
    n < 126
      ? Buffer.from([0x80 | opcode, 0x80 | n, ...MASK])
      : n < 65_536
        ? Buffer.from([0x80 | opcode, 0x80 | 126, n >> 8, n & 0xff, ...MASK])
        : Buffer.from([0x80 | opcode, 0x80 | 127, 0, 0, 0, 0, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, ...MASK]);
  return Buffer.concat([head, Buffer.from(payload.map((b, i) => b ^ MASK[i & 3]!))]);
}

/**
 * A relay client on a bare TCP socket, authenticated with the sans-IO client state machine:
 * after it resolves the test owns the socket completely (it may stop reading, write any
 * bytes). Bytes the relay sent after `ServerConfirmsAuth` in the same read are dropped.
 */
export function rawTcpRelayClient(port: number, options: { localAddress?: string; secretKey?: SecretKey } = {}): Promise<{ socket: Socket; secretKey: SecretKey }> {
  const secretKey = options.secretKey ?? SecretKey.generate();
  const conn = new RelayClientConnection({ secretKey, version: 2, crypto: defaultCryptoProvider, keys: new KeyCache(), now: 0, pingIntervalMs: 1e9 });
  const socket = connect({ port, host: '127.0.0.1', localAddress: options.localAddress });
  socket.setNoDelay(true);
  socket.write(
    `GET /relay HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: iroh-relay-v2\r\n\r\n`,
  );
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const fail = (err: unknown): void => {
      socket.destroy();
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('closed during the handshake')));
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.subarray(0, 12).toString().includes('101')) return fail(new Error(buf.subarray(0, end).toString()));
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      // Server frames are unmasked and short until the handshake is done.
      while (buf.length >= 2) {
        const len = buf[1]! & 0x7f;
        if (len >= 126 || buf.length < 2 + len) return;
        const payload = new Uint8Array(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        conn.handleFrame(0, payload);
        for (let t = conn.pollTransmit(); t !== undefined; t = conn.pollTransmit()) socket.write(maskedFrame(t));
        for (let e = conn.pollEvent(); e !== undefined; e = conn.pollEvent()) {
          if (e.type === 'closed') return fail(e.error);
          if (e.type === 'connected') {
            socket.off('data', onData);
            socket.removeAllListeners('error');
            socket.removeAllListeners('close');
            socket.on('error', () => undefined);
            resolve({ socket, secretKey });
            return;
          }
        }
      }
    };
    socket.on('data', onData);
  });
}
