/**
 * The sans-IO relay connection state machines, client and server, driven against each other
 * and against hand-made hostile frames (shared/docs/iroh-wire.md §1.5–§1.8,
 * reliability.md §5.F.2, §5.F.5, §5.G.1, §5.G.2). Time is a plain number here.
 */
import { describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { defaultCryptoProvider } from '../../src/transport/crypto/index.ts';
import { toHex } from '../../src/util/bytes.ts';
import {
  encodeClientAuth,
  encodeDatagramFrame,
  encodeHealth,
  encodePingPong,
  encodeServerChallenge,
  encodeServerConfirmsAuth,
  encodeServerDeniesAuth,
  encodeStatus,
  FrameType,
  KeyCache,
  RelayClientConnection,
  RelayServerConnection,
  signChallenge,
  validateUpgradeRequest,
  bearerToken,
  negotiateVersion,
  type RelayClientConnectionEvent,
  type RelayServerConnectionEvent,
} from '../../src/relay/protocol/index.ts';

const crypto = defaultCryptoProvider;
const alice = SecretKey.fromBytes(new Uint8Array(32).fill(1));
const bob = SecretKey.fromBytes(new Uint8Array(32).fill(2));

function drain<T>(poll: () => T | undefined): T[] {
  const out: T[] = [];
  for (let x = poll(); x !== undefined; x = poll()) out.push(x);
  return out;
}

function client(options: Partial<ConstructorParameters<typeof RelayClientConnection>[0]> = {}) {
  return new RelayClientConnection({ secretKey: alice, version: 2, crypto, keys: new KeyCache(), now: 0, handshakeDeadline: 10_000, ...options });
}

function server(options: Partial<ConstructorParameters<typeof RelayServerConnection>[0]> = {}) {
  return new RelayServerConnection({ version: 2, crypto, handshakeDeadline: 30_000, pingJitterMinMs: 0, pingJitterMaxMs: 0, ...options });
}

/** Run the handshake between a client and a server state machine; returns both, connected. */
function connectedPair() {
  const c = client();
  const s = server();
  s.start(0);
  for (const f of drain(() => s.pollTransmit())) c.handleFrame(0, f);
  for (const f of drain(() => c.pollTransmit())) s.handleFrame(0, f);
  const auth = drain(() => s.pollEvent());
  expect(auth).toEqual([{ type: 'authenticated', publicKey: alice.public(), mechanism: 'challenge' }]);
  s.accept(0);
  for (const f of drain(() => s.pollTransmit())) c.handleFrame(0, f);
  return { c, s };
}

describe('client and server handshake (iroh-wire §1.5)', () => {
  it('challenge → ClientAuth → ServerConfirmsAuth; the client pings right after connecting (§1.7)', () => {
    const { c, s } = connectedPair();
    expect(c.state).toBe('connected');
    expect(s.state).toBe('connected');
    expect(drain(() => c.pollEvent())).toEqual([{ type: 'connected' }]);
    const [ping] = drain(() => c.pollTransmit());
    expect(ping![0]).toBe(FrameType.Ping);
    s.handleFrame(5, ping!);
    const [pong] = drain(() => s.pollTransmit());
    expect(toHex(pong!)).toBe(toHex(Uint8Array.of(FrameType.Pong, ...ping!.subarray(1))));
    c.handleFrame(25, pong!);
    expect(drain(() => c.pollEvent())).toEqual([{ type: 'pong', rttMs: 25 }]);
    expect(c.rttMs).toBe(25);
  });

  it('the server denies a bad signature with ServerDeniesAuth("signature invalid")', () => {
    const c = client();
    const s = server();
    s.start(0);
    const [challenge] = drain(() => s.pollTransmit());
    // Signed over another challenge: a replay from another session.
    s.handleFrame(0, signChallenge(alice, new Uint8Array(16).fill(9), crypto));
    const out = drain(() => s.pollTransmit());
    expect(out.map(toHex)).toEqual([toHex(encodeServerDeniesAuth('signature invalid'))]);
    expect(drain(() => s.pollEvent())).toMatchObject([{ type: 'closed', reason: 'signature-invalid' }]);
    c.handleFrame(0, challenge!);
    c.handleFrame(0, out[0]!);
    expect(drain(() => c.pollEvent())).toMatchObject([{ type: 'closed', error: { code: 'ERR_RELAY_DENIED', message: expect.stringContaining('signature invalid') } }]);
  });

  it('the server denies a ClientAuth signed by a key other than the one claimed', () => {
    const s = server();
    s.start(0);
    const [challenge] = drain(() => s.pollTransmit());
    const forged = signChallenge(bob, challenge!.subarray(1), crypto);
    forged.set(alice.public().bytes, 1);
    s.handleFrame(0, forged);
    expect(drain(() => s.pollEvent())).toMatchObject([{ type: 'closed', reason: 'signature-invalid' }]);
  });

  it('the server closes on a first frame other than ClientAuth (a datagram)', () => {
    const s = server();
    s.start(0);
    s.handleFrame(0, encodeDatagramFrame(4, bob.public().bytes, 0, 0, new Uint8Array(10)));
    expect(drain(() => s.pollEvent())).toMatchObject([{ type: 'closed', reason: 'handshake-protocol', error: { code: 'ERR_RELAY_HANDSHAKE' } }]);
    expect(drain(() => s.pollTransmit())).toEqual([]);
  });

  it('the server closes when the establish deadline passes without ClientAuth (slowloris)', () => {
    const s = server({ handshakeDeadline: 30_000 });
    s.start(0);
    expect(s.pollTimeout()).toBe(30_000);
    s.handleTimeout(29_999);
    expect(s.state).toBe('challenged');
    s.handleTimeout(30_000);
    expect(drain(() => s.pollEvent())).toMatchObject([{ type: 'closed', reason: 'handshake-timeout', error: { code: 'ERR_RELAY_TIMEOUT' } }]);
  });

  it('the header path authenticates without a challenge', () => {
    const s = server();
    s.start(0, alice.public());
    expect(drain(() => s.pollTransmit())).toEqual([]);
    expect(drain(() => s.pollEvent())).toEqual([{ type: 'authenticated', publicKey: alice.public(), mechanism: 'keying-material' }]);
    s.accept(0);
    expect(drain(() => s.pollTransmit()).map(toHex)).toEqual(['02']);
  });

  it('the client accepts ServerConfirmsAuth without a challenge (iroh-wire §1.11b)', () => {
    const c = client();
    c.handleFrame(0, encodeServerConfirmsAuth());
    expect(c.state).toBe('connected');
  });

  it('access-control denial sends the reason and closes', () => {
    const s = server();
    s.start(0, alice.public());
    drain(() => s.pollEvent());
    s.deny('not on the list');
    expect(drain(() => s.pollTransmit()).map(toHex)).toEqual([toHex(encodeServerDeniesAuth('not on the list'))]);
    expect(s.state).toBe('closed');
  });

  const clientHandshakeCases: Array<[string, Uint8Array]> = [
    ['a datagram before authentication', encodeDatagramFrame(6, bob.public().bytes, 0, 0, new Uint8Array(3))],
    ['a Ping before authentication', encodePingPong(FrameType.Ping, new Uint8Array(8))],
    ['a challenge of the wrong length', encodeServerChallenge(new Uint8Array(16)).subarray(0, 10)],
    ['garbage', Uint8Array.of(0x2a, 1, 2, 3)],
  ];
  for (const [name, frame] of clientHandshakeCases) {
    it(`the client fails the handshake on ${name}`, () => {
      const c = client();
      c.handleFrame(0, frame);
      expect(drain(() => c.pollEvent())).toMatchObject([{ type: 'closed', error: { code: 'ERR_RELAY_HANDSHAKE' } }]);
    });
  }

  it('the client fails on a second challenge after answering the first', () => {
    const c = client();
    c.handleFrame(0, encodeServerChallenge(new Uint8Array(16)));
    c.handleFrame(0, encodeServerChallenge(new Uint8Array(16)));
    expect(drain(() => c.pollEvent())).toMatchObject([{ type: 'closed', error: { code: 'ERR_RELAY_HANDSHAKE' } }]);
  });

  it('the client times out a handshake that never completes', () => {
    const c = client({ handshakeDeadline: 50 });
    c.handleFrame(0, encodeServerChallenge(new Uint8Array(16)));
    expect(c.pollTimeout()).toBe(50);
    c.handleTimeout(50);
    expect(drain(() => c.pollEvent())).toMatchObject([{ type: 'closed', error: { code: 'ERR_RELAY_TIMEOUT' } }]);
  });
});

describe('data phase (iroh-wire §1.6–§1.8)', () => {
  it('the client delivers single and batch datagrams with their source, split by segment size', () => {
    const { c } = connectedPair();
    drain(() => c.pollEvent());
    c.handleFrame(1, encodeDatagramFrame(6, bob.public().bytes, 2, 0, Uint8Array.of(1, 2, 3)));
    c.handleFrame(1, encodeDatagramFrame(7, bob.public().bytes, 0, 2, Uint8Array.of(1, 2, 3, 4, 5)));
    const events = drain(() => c.pollEvent()) as Array<Extract<RelayClientConnectionEvent, { type: 'datagrams' }>>;
    expect(events.map((e) => [e.type, e.src.toString(), e.ecn, e.datagrams.map(toHex)])).toEqual([
      ['datagrams', bob.public().toString(), 2, ['010203']],
      ['datagrams', bob.public().toString(), 0, ['0102', '0304', '05']],
    ]);
  });

  it('the client answers a relay Ping with a Pong carrying the same bytes, at once', () => {
    const { c } = connectedPair();
    drain(() => c.pollTransmit());
    c.handleFrame(1, encodePingPong(FrameType.Ping, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)));
    expect(drain(() => c.pollTransmit()).map(toHex)).toEqual(['0a0102030405060708']);
  });

  it('the client reports EndpointGone, Status, Restarting', () => {
    const { c } = connectedPair();
    drain(() => c.pollEvent());
    c.handleFrame(1, Uint8Array.of(8, ...bob.public().bytes));
    c.handleFrame(1, encodeStatus(1));
    c.handleFrame(1, Uint8Array.of(12, 0, 0, 0, 10, 0, 0, 0, 20));
    expect(drain(() => c.pollEvent())).toEqual([
      { type: 'endpointGone', endpointId: bob.public() },
      { type: 'status', status: 1 },
      { type: 'restarting', reconnectInMs: 10, tryForMs: 20 },
    ]);
  });

  it('the client closes with ERR_RELAY_PROTOCOL on Health over v2 (FrameNotAllowedInVersion)', () => {
    const { c } = connectedPair();
    drain(() => c.pollEvent());
    c.handleFrame(1, encodeHealth('dog'));
    expect(drain(() => c.pollEvent())).toMatchObject([{ type: 'closed', error: { code: 'ERR_RELAY_PROTOCOL', message: expect.stringContaining('not allowed') } }]);
  });

  it('the client accepts Health on v1 and reports the text', () => {
    const c = client({ version: 1 });
    c.handleFrame(0, encodeServerConfirmsAuth());
    drain(() => c.pollEvent());
    c.handleFrame(1, encodeHealth('Hello? Yes this is dog.'));
    expect(drain(() => c.pollEvent())).toEqual([{ type: 'health', problem: 'Hello? Yes this is dog.' }]);
  });

  it('the client declares the link dead when the pong deadline passes, with the RTT-based timeout (§1.7)', () => {
    const c = client({ pingIntervalMs: 15_000, maxPongTimeoutMs: 5_000 });
    c.handleFrame(0, encodeServerConfirmsAuth());
    const [ping] = drain(() => c.pollTransmit());
    expect(c.pollTimeout()).toBe(5_000); // no RTT yet: the max
    c.handleFrame(100, encodePingPong(FrameType.Pong, ping!.subarray(1)));
    // Next ping after 15 s of silence; its deadline is 3 × 100 ms clamped to ≥ 500 ms.
    expect(c.pollTimeout()).toBe(15_100);
    c.handleTimeout(15_100);
    expect(drain(() => c.pollTransmit())[0]![0]).toBe(FrameType.Ping);
    expect(c.pollTimeout()).toBe(15_600);
    c.handleTimeout(15_599);
    expect(c.state).toBe('connected');
    c.handleTimeout(15_600);
    expect(drain(() => c.pollEvent()).at(-1)).toMatchObject({ type: 'closed', error: { code: 'ERR_RELAY_TIMEOUT' } });
  });

  it('the client postpones its ping while frames keep arriving', () => {
    const c = client({ pingIntervalMs: 1_000 });
    c.handleFrame(0, encodeServerConfirmsAuth());
    const [ping] = drain(() => c.pollTransmit());
    c.handleFrame(10, encodePingPong(FrameType.Pong, ping!.subarray(1)));
    c.handleFrame(900, encodeStatus(0));
    expect(c.pollTimeout()).toBe(1_900);
  });

  it('the server hands out datagram frames with their destination, and forwards nothing itself', () => {
    const { s } = connectedPair();
    drain(() => s.pollEvent());
    drain(() => s.pollTransmit());
    const frame = encodeDatagramFrame(5, bob.public().bytes, 3, 1000, new Uint8Array(2500));
    s.handleFrame(1, frame);
    const [e] = drain(() => s.pollEvent()) as Array<Extract<RelayServerConnectionEvent, { type: 'datagrams' }>>;
    expect(e).toMatchObject({ type: 'datagrams', typeLength: 1, batch: true, contentLength: 2500 });
    expect(toHex(e!.dst)).toBe(toHex(bob.public().bytes));
    expect(drain(() => s.pollTransmit())).toEqual([]);
  });

  it('the server closes with ERR_RELAY_PROTOCOL on an unknown frame type', () => {
    const { s } = connectedPair();
    drain(() => s.pollEvent());
    s.handleFrame(1, Uint8Array.of(0x2a, 0, 0));
    expect(drain(() => s.pollEvent())).toMatchObject([{ type: 'closed', reason: 'protocol', error: { code: 'ERR_RELAY_PROTOCOL' } }]);
  });

  it('the server closes on a second ClientAuth after the handshake', () => {
    const { s } = connectedPair();
    drain(() => s.pollEvent());
    s.handleFrame(1, encodeClientAuth(alice.public(), new Uint8Array(64)));
    expect(drain(() => s.pollEvent())).toMatchObject([{ type: 'closed', reason: 'protocol' }]);
  });

  it('the server pings after the interval of silence and drops a client that never answers', () => {
    const s = server({ pingIntervalMs: 15_000, pingJitterMinMs: 1_000, pingJitterMaxMs: 5_000, maxPongTimeoutMs: 5_000 });
    s.start(0, alice.public());
    s.accept(0);
    drain(() => s.pollTransmit());
    drain(() => s.pollEvent());
    const first = s.pollTimeout()!;
    expect(first).toBeGreaterThanOrEqual(16_000);
    expect(first).toBeLessThanOrEqual(20_000);
    s.handleTimeout(first);
    expect(drain(() => s.pollTransmit())[0]![0]).toBe(FrameType.Ping);
    s.handleTimeout(first + 5_000);
    expect(drain(() => s.pollEvent())).toMatchObject([{ type: 'closed', reason: 'pong-timeout' }]);
  });

  it('the server sends Status on v2 and Health text on v1', () => {
    const v2 = server();
    v2.start(0, alice.public());
    v2.accept(0);
    drain(() => v2.pollTransmit());
    v2.sendStatus(1);
    expect(drain(() => v2.pollTransmit()).map(toHex)).toEqual(['0d01']);
    const v1 = server({ version: 1 });
    v1.start(0, alice.public());
    v1.accept(0);
    drain(() => v1.pollTransmit());
    v1.sendStatus(1);
    expect(drain(() => v1.pollTransmit())[0]![0]).toBe(FrameType.Health);
  });
});

describe('upgrade request validation (iroh-wire §1.2)', () => {
  const good = {
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
    'sec-websocket-protocol': 'iroh-relay-v2, iroh-relay-v1',
  };

  it('accepts iroh’s request and picks the highest offered version', () => {
    expect(validateUpgradeRequest({ method: 'GET', headers: good })).toEqual({ ok: true, version: 2, key: good['sec-websocket-key'] });
    expect(validateUpgradeRequest({ method: 'GET', headers: { ...good, 'sec-websocket-protocol': 'iroh-relay-v1' } })).toMatchObject({ ok: true, version: 1 });
    expect(negotiateVersion(' iroh-relay-v1 ,iroh-relay-v2,foo')).toBe(2);
  });

  const rejects: Array<[string, Record<string, string | undefined>, number, string?]> = [
    ['Upgrade not byte-exact (WebSocket)', { upgrade: 'WebSocket' }, 400],
    ['no Upgrade', { upgrade: undefined }, 400],
    ['no Sec-WebSocket-Key', { 'sec-websocket-key': undefined }, 400],
    ['Sec-WebSocket-Version 8', { 'sec-websocket-version': '8' }, 400, '13'],
    ['no Sec-WebSocket-Protocol', { 'sec-websocket-protocol': undefined }, 400],
    ['an unknown relay version', { 'sec-websocket-protocol': 'iroh-relay-v3' }, 400],
    ['a non-ASCII protocol header', { 'sec-websocket-protocol': 'iroh-relay-v2, é' }, 400],
  ];
  for (const [name, patch, status, versionHeader] of rejects) {
    it(`rejects ${name} with ${status}`, () => {
      const d = validateUpgradeRequest({ method: 'GET', headers: { ...good, ...patch } });
      expect(d).toMatchObject({ ok: false, status });
      if (versionHeader !== undefined && !d.ok) expect(d.headers?.['Sec-WebSocket-Version']).toBe(versionHeader);
    });
  }

  it('rejects methods other than GET', () => {
    expect(validateUpgradeRequest({ method: 'POST', headers: good })).toMatchObject({ ok: false, status: 405 });
  });

  it('finds the bearer token in Authorization or ?token=', () => {
    expect(bearerToken({ authorization: 'Bearer abc.def' }, '/relay')).toBe('abc.def');
    expect(bearerToken({}, '/relay?token=xyz')).toBe('xyz');
    expect(bearerToken({ authorization: 'Basic abc' }, '/relay')).toBeUndefined();
    expect(bearerToken({}, '/relay')).toBeUndefined();
  });
});
