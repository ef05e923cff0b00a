/**
 * sdnet relay clients talking through the sdnet relay server over real sockets on 127.0.0.1
 * (shared/docs/iroh-wire.md §1.5–§1.9): datagrams and batches arrive with the right source,
 * EndpointGone, same-id duplicates (Status 1, promotion with Status 0), v1 Health, access
 * control, TLS with the keying-material header, server pings, graceful restart with
 * Restarting, and the HTTP surface of the relay.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { toHex } from '../../src/util/bytes.ts';
import { RelayClient, standardWebSocketTransport, type RelayDatagrams } from '../../src/relay/client/index.ts';
import { FrameType, StatusCode, encodeDatagramFrame } from '../../src/relay/protocol/index.ts';
import { startRelayServer, type RelayServerHandle } from '../../relay-server/src/index.ts';
import { failOnEscapes, nextEvent, rawExchange, RawRelayClient, scrape, startTestRelay, testClient, until, upgradeRequest } from '../helpers/relay-test-utils.ts';
import { OTHER_CA_PEM, TEST_CA_PEM, TEST_LEAF_CERT_PEM, TEST_LEAF_KEY_PEM } from '../helpers/relay-tls-fixture.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(options: Parameters<typeof startTestRelay>[0] = {}): Promise<RelayServerHandle> {
  const r = await startTestRelay(options);
  cleanups.push(() => r.close({ graceful: false }));
  return r;
}

function client(url: string, options: Parameters<typeof testClient>[1] = {}): RelayClient {
  const c = testClient(url, options);
  cleanups.push(() => c.close());
  return c;
}

/** Start connecting (the attempt is expected to fail; failures arrive as events). */
function started(c: RelayClient): RelayClient {
  c.connect().catch(() => undefined);
  return c;
}

/** Collect every datagram frame a client receives. */
function collect(c: RelayClient): RelayDatagrams[] {
  const got: RelayDatagrams[] = [];
  // Copy: the datagrams are views into the received message.
  c.on('datagrams', (d) => got.push({ src: d.src, ecn: d.ecn, datagrams: d.datagrams.map((x) => x.slice()) }));
  return got;
}

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

describe('sdnet client ↔ sdnet client through the relay', () => {
  it('delivers single datagrams and batches with the sender as source and the ECN byte kept', async () => {
    const r = await relay();
    const a = client(r.url);
    // b uses the WHATWG WebSocket (Node's global), the API browsers have.
    const b = client(r.url, { transport: standardWebSocketTransport() });
    const c = client(r.url);
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    const gotB = collect(b);
    expect(a.send(b.endpointId, bytes(1200, 1), 2)).toBe('sent');
    // A batch: three of 1200 and a shorter last one → one type-5 frame, split again at b.
    expect(a.send(b.endpointId, [bytes(1200, 2), bytes(1200, 3), bytes(1200, 4), bytes(500, 5)], 3)).toBe('sent');
    expect(c.send(b.endpointId, [bytes(10, 6), bytes(10, 7)])).toBe('sent');
    await until(() => gotB.length === 3, 'three frames at b');
    const bySrc = (src: RelayClient) => gotB.filter((d) => d.src.equals(src.endpointId));
    expect(bySrc(a).map((d) => [d.ecn, d.datagrams.map((x) => [x.length, x[0]])])).toEqual([
      [2, [[1200, 1]]],
      [3, [[1200, 2], [1200, 3], [1200, 4], [500, 5]]],
    ]);
    expect(bySrc(c).map((d) => d.datagrams.map((x) => x[0]))).toEqual([[6, 7]]);
    expect(a.stats).toMatchObject({ framesSent: 2, datagramsSent: 5 });
    // And back, to the ws client, from the WHATWG one.
    const gotA = collect(a);
    b.send(a.endpointId, bytes(33, 9));
    await until(() => gotA.length === 1, 'reply at a');
    expect(gotA[0]!.src.equals(b.endpointId)).toBe(true);
    const stats = r.stats();
    expect(stats.datagramsRelayed).toBe(8);
    expect(stats.framesRelayed).toBe(4);
    expect(stats.bytesRelayed).toBe(1200 * 4 + 500 + 20 + 33);
  });

  it('delivers through the async iterator as well as the callback', async () => {
    const r = await relay();
    const seen: number[] = [];
    const a = client(r.url);
    const b = client(r.url, { onDatagrams: (d) => seen.push(d.datagrams.length) });
    await Promise.all([a.connect(), b.connect()]);
    const it = b.incoming()[Symbol.asyncIterator]();
    a.send(b.endpointId, [bytes(100, 1), bytes(100, 2)]);
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(first.value!.datagrams.map((d: Uint8Array) => d[0])).toEqual([1, 2]);
    expect(seen).toEqual([2]);
    await b.close();
    expect((await it.next()).done).toBe(true);
  });

  it('queues datagrams sent before the connection is up and sends them once connected', async () => {
    const r = await relay();
    const b = client(r.url);
    await b.connect();
    const got = collect(b);
    const a = client(r.url);
    expect(a.send(b.endpointId, bytes(50, 1))).toBe('queued');
    await until(() => got.length === 1, 'queued datagram delivered');
    expect(got[0]!.src.equals(a.endpointId)).toBe(true);
  });

  it('tells the peers a client sent to that it is gone (EndpointGone), and no one else', async () => {
    const r = await relay();
    const [a, b, c, d] = [client(r.url), client(r.url), client(r.url), client(r.url)];
    await Promise.all([a.connect(), b.connect(), c.connect(), d.connect()]);
    const goneAtB: string[] = [];
    const goneAtC: string[] = [];
    b.on('endpointGone', (e) => goneAtB.push(e.endpointId.toString()));
    c.on('endpointGone', (e) => goneAtC.push(e.endpointId.toString()));
    const gotB = collect(b);
    a.send(b.endpointId, bytes(10, 1));
    await until(() => gotB.length === 1, 'datagram at b');
    const aId = a.endpointId.toString();
    await a.close();
    await until(() => goneAtB.length === 1, 'EndpointGone at b');
    expect(goneAtB).toEqual([aId]);
    // a's bookkeeping went with it (b, c, d had sent nothing).
    expect(r.stats().sentToEntries).toBe(0);
    // Barrier: anything the relay sent c because of a's departure was written before this.
    const gotC = collect(c);
    d.send(c.endpointId, bytes(1, 1));
    await until(() => gotC.length === 1, 'barrier datagram at c');
    expect(goneAtC).toEqual([]);
  });

  it('makes a second connection with the same id active; the first gets Status(1), receives nothing, and is promoted with Status(0) when the second leaves', async () => {
    const r = await relay();
    const key = SecretKey.generate();
    const first = client(r.url, { secretKey: key });
    const sender = client(r.url);
    await Promise.all([first.connect(), sender.connect()]);
    const firstStatus: number[] = [];
    first.on('status', (e) => firstStatus.push(e.status));
    const gotFirst = collect(first);
    const second = client(r.url, { secretKey: key });
    const gotSecond = collect(second);
    await second.connect();
    await until(() => firstStatus.length === 1, 'Status at the first connection');
    expect(firstStatus).toEqual([StatusCode.SameEndpointIdConnected]);
    expect(r.stats()).toMatchObject({ clients: 3, endpoints: 2 });
    sender.send(key.public(), bytes(20, 1));
    await until(() => gotSecond.length === 1, 'datagram at the active (second) connection');
    await second.close();
    await until(() => firstStatus.length === 2, 'promotion Status at the first connection');
    expect(firstStatus).toEqual([StatusCode.SameEndpointIdConnected, StatusCode.Healthy]);
    sender.send(key.public(), bytes(20, 2));
    await until(() => gotFirst.length === 1, 'datagram at the promoted connection');
    // The only datagram the first connection ever got is the one sent after its promotion.
    expect(gotFirst.map((d) => d.datagrams[0]![0])).toEqual([2]);
  });

  it('sends Health text instead of Status on a v1 connection (iroh-wire §1.12)', async () => {
    const r = await relay();
    const key = SecretKey.generate();
    const v1 = new RawRelayClient(r.url, { secretKey: key, protocols: ['iroh-relay-v1'] });
    cleanups.push(() => v1.close());
    await v1.authenticate();
    expect(v1.ws.protocol).toBe('iroh-relay-v1');
    const n = v1.received.length;
    const second = client(r.url, { secretKey: key });
    await second.connect();
    const f = await v1.frame(n + 1);
    expect(f[0]).toBe(FrameType.Health);
    expect(new TextDecoder().decode(f.subarray(1))).toMatch(/same endpoint id/);
  });

  it('picks v2 when both are offered and v1 when only v1 is (iroh-wire §1.2)', async () => {
    const r = await relay();
    const both = new RawRelayClient(r.url);
    const v1 = new RawRelayClient(r.url, { protocols: ['iroh-relay-v1'] });
    cleanups.push(() => both.close(), () => v1.close());
    await Promise.all([both.opened, v1.opened]);
    expect([both.ws.protocol, v1.ws.protocol]).toEqual(['iroh-relay-v2', 'iroh-relay-v1']);
  });

  it('answers the server’s keep-alive pings, and stays connected', async () => {
    const r = await relay({ timing: { pingIntervalMs: 30, pingJitterMinMs: 0, pingJitterMaxMs: 10, pongTimeoutMs: 2_000 } });
    const a = client(r.url);
    await a.connect();
    await until(async () => ((await scrape(r)).get('relay_pings_sent_total') ?? 0) >= 3, 'three server pings');
    expect(a.state).toBe('connected');
    expect(a.stats.disconnects).toBe(0);
    expect((await scrape(r)).get('relay_disconnects_total{reason="pong_timeout"}') ?? 0).toBe(0);
  });

  it('drops datagrams for an unknown destination and counts them', async () => {
    const r = await relay();
    const a = client(r.url);
    await a.connect();
    a.send(SecretKey.generate().public(), bytes(10, 1));
    await until(() => r.stats().dropsNoRecipient === 1, 'drop counted');
  });
});

describe('access control (reliability.md §4)', () => {
  it('admits a client with a listed bearer token and denies one without, with the reason', async () => {
    const r = await relay({ access: { tokens: ['s3cret'] } });
    const good = client(r.url, { token: 's3cret' });
    await good.connect();
    const bad = started(client(r.url));
    const e = await nextEvent(bad, 'disconnected');
    expect(e.error.code).toBe('ERR_RELAY_DENIED');
    expect(e.error.message).toMatch(/not authorized/);
    expect(e.reconnectInMs).toBeGreaterThanOrEqual(0);
    // The WHATWG transport carries the token as ?token= (browsers cannot set headers).
    const browserish = client(r.url, { token: 's3cret', transport: standardWebSocketTransport() });
    await browserish.connect();
    expect((await scrape(r)).get('relay_auth_failures_total{reason="denied"}')).toBeGreaterThanOrEqual(1);
  });

  it('admits listed EndpointIds without a token', async () => {
    const listed = SecretKey.generate();
    const r = await relay({ access: { allowEndpoints: [listed.public().toString()] } });
    await client(r.url, { secretKey: listed }).connect();
    const other = started(client(r.url));
    expect((await nextEvent(other, 'disconnected')).error.code).toBe('ERR_RELAY_DENIED');
  });

  it('disconnects clients whose token is revoked at runtime, and denies their reconnects', async () => {
    const r = await relay({ access: { tokens: ['t1', 't2'] } });
    const keep = client(r.url, { token: 't1' });
    const revoked = client(r.url, { token: 't2' });
    await Promise.all([keep.connect(), revoked.connect()]);
    const gone = nextEvent(revoked, 'disconnected');
    const denied = nextEvent(revoked, 'disconnected', (e) => e.error.code === 'ERR_RELAY_DENIED');
    r.updateAccess({ tokens: ['t1'] });
    expect((await gone).wasConnected).toBe(true);
    await denied;
    expect(keep.state).toBe('connected');
  });

  it('uses a custom async access hook', async () => {
    const r = await relay({ accessHook: async (req) => (req.token === 'ok' ? { allow: true } : { allow: false, reason: 'go away' }) });
    await client(r.url, { token: 'ok' }).connect();
    const e = await nextEvent(started(client(r.url, { token: 'no' })), 'disconnected');
    expect(e.error.message).toMatch(/go away/);
  });
});

describe('TLS (iroh-wire §1.1, §1.5 header path)', () => {
  const tls = { cert: TEST_LEAF_CERT_PEM, key: TEST_LEAF_KEY_PEM };

  it('authenticates over https with the keying-material header, without a challenge', async () => {
    const r = await relay({ tls });
    expect(r.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const a = client(r.url, { tls: { ca: TEST_CA_PEM } });
    const b = client(r.url, { tls: { ca: TEST_CA_PEM } });
    await Promise.all([a.connect(), b.connect()]);
    const m = await scrape(r);
    expect(m.get('relay_handshakes_total{mechanism="keying-material"}')).toBe(2);
    const got = collect(b);
    a.send(b.endpointId, bytes(1200, 7));
    await until(() => got.length === 1, 'datagram over TLS');
    expect(got[0]!.src.equals(a.endpointId)).toBe(true);
  });

  it('falls back to the challenge when the client sends no header', async () => {
    const r = await relay({ tls });
    await client(r.url, { tls: { ca: TEST_CA_PEM, headerAuth: false } }).connect();
    expect((await scrape(r)).get('relay_handshakes_total{mechanism="challenge"}')).toBe(1);
  });

  it('falls back to the challenge when the header does not verify (forged for another session)', async () => {
    const r = await relay({ tls });
    const key = SecretKey.generate();
    const { encodeClientAuthHeader } = await import('../../src/relay/protocol/index.ts');
    // A header made from keying material of some other TLS session.
    const forged = encodeClientAuthHeader(key, new Uint8Array(32).fill(1));
    const { connect } = await import('node:tls');
    const socket = connect({ host: '127.0.0.1', port: r.port, ca: TEST_CA_PEM, ALPNProtocols: ['http/1.1'] });
    await new Promise((res) => socket.once('secureConnect', res));
    const req = upgradeRequest(r.port, { 'x-iroh-relay-client-auth-v1': forged });
    let data = '';
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.write(req);
    await until(() => data.includes('\r\n\r\n') && data.length > data.indexOf('\r\n\r\n') + 4, 'first frame after 101');
    socket.destroy();
    expect(data).toMatch(/^HTTP\/1\.1 101/);
    // The first frame after the 101 is a ServerChallenge (0x82 0x11 0x00 …: binary, 17 bytes, type 0).
    const body = data.slice(data.indexOf('\r\n\r\n') + 4);
    expect([body.charCodeAt(0), body.charCodeAt(1), body.charCodeAt(2)]).toEqual([0x82, 17, 0]);
  });

  it('refuses a relay whose certificate is not signed by a trusted CA', async () => {
    const r = await relay({ tls });
    const e = await nextEvent(started(client(r.url, { tls: { ca: OTHER_CA_PEM } })), 'disconnected');
    expect(e.error.code).toBe('ERR_RELAY_HANDSHAKE');
    expect(e.error.message).toMatch(/certificate/i);
  });
});

describe('graceful shutdown (Restarting, iroh-wire §1.6 type 12)', () => {
  it('tells clients Restarting, closes them, and they reconnect to the relay when it is back', async () => {
    const r1 = await startTestRelay({ timing: { restartReconnectInMs: 50, restartTryForMs: 1_000 } });
    const port = r1.port;
    const a = client(r1.url);
    await a.connect();
    const restarting = nextEvent(a, 'restarting');
    const disconnected = nextEvent(a, 'disconnected');
    await r1.close({ graceful: true });
    expect(await restarting).toEqual({ reconnectInMs: 50, tryForMs: 1_000 });
    const d = await disconnected;
    expect(d.wasConnected).toBe(true);
    // The relay's advice is a lower bound for the next attempt.
    expect(d.reconnectInMs).toBeGreaterThanOrEqual(50);
    // Same port (the one the first relay was given), a new process-equivalent.
    const r2 = await startTestRelay({ port });
    cleanups.push(() => r2.close({ graceful: false }));
    await nextEvent(a, 'connected');
    expect(r2.stats().clients).toBe(1);
  });
});

describe('relay HTTP surface (iroh-wire §1.9) and upgrade validation (§1.2)', () => {
  it('serves /ping, /generate_204, /healthz, /, /robots.txt, and 404 otherwise', async () => {
    const r = await relay();
    const get = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, r.url), { headers });
    const ping = await get('/ping');
    expect([ping.status, ping.headers.get('access-control-allow-origin'), await ping.text()]).toEqual([200, '*', '']);
    const g = await get('/generate_204', { 'X-Iroh-Challenge': 'ts_127.0.0.1' });
    expect([g.status, g.headers.get('x-iroh-response')]).toEqual([204, 'response ts_127.0.0.1']);
    for (const bad of ['a b', 'x'.repeat(64), 'abc\u00e9'.replace('\u00e9', '%'), '']) {
      const res = await get('/generate_204', bad === '' ? {} : { 'X-Iroh-Challenge': bad });
      expect([res.status, res.headers.get('x-iroh-response')]).toEqual([204, null]);
    }
    const health = await get('/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const index = await get('/');
    expect([index.status, index.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8']);
    expect((await get('/index.html')).status).toBe(200);
    expect(await (await get('/robots.txt')).text()).toBe('User-agent: *\nDisallow: /\n');
    expect((await get('/nothing-here')).status).toBe(404);
    expect((await get('/relay')).status).toBe(426);
    expect((await fetch(new URL('/ping', r.url), { method: 'POST' })).status).toBe(405);
    const metrics = await fetch(r.metricsUrl!);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.text()).toMatch(/^relay_http_requests_total\{path="\/ping"\} 2$/m);
    expect((await fetch(new URL('/other', r.metricsUrl))).status).toBe(404);
  });

  const rejects: Array<[string, Record<string, string | undefined>, RegExp]> = [
    ['Upgrade: WebSocket (not byte-exact)', { Upgrade: 'WebSocket' }, /^HTTP\/1\.1 400/],
    ['Sec-WebSocket-Version 8', { 'Sec-WebSocket-Version': '8' }, /^HTTP\/1\.1 400[\s\S]*Sec-WebSocket-Version: 13/],
    ['no Sec-WebSocket-Protocol', { 'sec-websocket-protocol': undefined }, /^HTTP\/1\.1 400/],
    ['an unknown relay version', { 'sec-websocket-protocol': 'iroh-relay-v9' }, /^HTTP\/1\.1 400[\s\S]*Unsupported relay version/],
    ['no Sec-WebSocket-Key', { 'Sec-WebSocket-Key': undefined }, /^HTTP\/1\.1 400/],
  ];
  for (const [name, overrides, expected] of rejects) {
    it(`rejects an upgrade with ${name}`, async () => {
      const r = await relay();
      const { response, closed } = await rawExchange(r.port, upgradeRequest(r.port, overrides));
      expect(response).toMatch(expected);
      expect(closed).toBe(true);
    });
  }

  it('rejects bytes sent after the upgrade request before the 101 (BufferNotEmpty)', async () => {
    const r = await relay();
    const { response } = await rawExchange(r.port, upgradeRequest(r.port) + '\x82\x01\x09');
    expect(response).toMatch(/^HTTP\/1\.1 400[\s\S]*Unexpected bytes/);
  });

  it('answers 404 to an upgrade on another path', async () => {
    const r = await relay();
    expect((await rawExchange(r.port, upgradeRequest(r.port, {}, '/other'))).response).toMatch(/^HTTP\/1\.1 404/);
  });

  it('answers an exact iroh upgrade with 101, the chosen subprotocol and the RFC 6455 accept key', async () => {
    const r = await relay();
    const { response } = await rawExchange(r.port, upgradeRequest(r.port), 300);
    expect(response).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(response).toMatch(/\r\nSec-WebSocket-Protocol: iroh-relay-v2\r\n/i);
    // RFC 6455 §1.3 example key → accept value.
    expect(response).toMatch(/\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
  });

  it('forwards a batch frame whose type uses a two-byte varint, as iroh decodes those', async () => {
    const r = await relay();
    const raw = new RawRelayClient(r.url);
    cleanups.push(() => raw.close());
    await raw.authenticate();
    const b = client(r.url);
    await b.connect();
    const got = collect(b);
    const frame = encodeDatagramFrame(5, b.endpointId.bytes, 0, 3, Uint8Array.of(1, 2, 3, 4));
    raw.send(Uint8Array.of(0x40, ...frame));
    await until(() => got.length === 1, 'datagram at b');
    expect(got[0]!.datagrams.map(toHex)).toEqual(['010203', '04']);
  });
});

describe('programmatic server', () => {
  it('binds 127.0.0.1 by default and reports its URL', async () => {
    const r = await startRelayServer({ port: 0 });
    cleanups.push(() => r.close());
    expect(r.url).toBe(`http://127.0.0.1:${r.port}/`);
    expect(r.metricsUrl).toBeUndefined();
    expect((await fetch(new URL('/ping', r.url))).status).toBe(200);
  });
});
