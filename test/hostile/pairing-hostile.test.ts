/**
 * Hostile input to the pairing protocol (`sdnet/pair/1`, the one ALPN unpaired peers reach),
 * from raw endpoints against a device showing a code:
 * - out of order (Confirm first, Reply sent to the initiator), twice (Start twice on a stream),
 *   oversized frames (refused from the length prefix), malformed JSON, unknown tags, invalid
 *   shares (the identity, a non-canonical encoding): each stream reset or failed with its code;
 *   nothing stored; only exchanges that got a Reply count as tries;
 * - a flood of Starts with the right R from many connections at once: exactly 3 get a Reply,
 *   the code burns, nobody is stored, the device keeps serving;
 * - a flood of Starts for unknown codes: rate-limited (`ERR_PAIRING_BUSY`), then served again;
 * - too many streams on one connection and too many connections: closed with
 *   TOO_MANY_CONNECTIONS;
 * and through all of it no error escapes, and an honest joiner still pairs with a fresh code.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint } from '../../src/endpoint/endpoint.ts';
import type { Connection } from '../../src/endpoint/connection.ts';
import { StreamResetError } from '../../src/endpoint/streams.ts';
import { EndpointAddr } from '../../src/identity/endpoint-addr.ts';
import { SecretKey } from '../../src/identity/keys.ts';
import { CloseCode, StreamCode } from '../../src/protocols/codes.ts';
import { encodeFrame, FrameReader } from '../../src/protocols/framing.ts';
import { PairingCode } from '../../src/protocols/pairing/code.ts';
import { CpaceParty } from '../../src/protocols/pairing/cpace.ts';
import { AD_JOINER, channelIdentifier, PAIR_EXPORTER_LABEL } from '../../src/protocols/pairing/exchange.ts';
import { decodePairMessage, encodePairMessage, PAIR_ALPN, type PairMessage } from '../../src/protocols/pairing/messages.ts';
import type { Core } from '../../src/service/index.ts';
import { failOnEscapes, until } from '../helpers/relay-test-utils.ts';
import { Scope } from '../helpers/pairing.ts';
import { fromHex } from '../../src/util/bytes.ts';

failOnEscapes();
const scope = new Scope();
afterEach(() => scope.cleanupAll());

type Outcome = { kind: 'message'; message: PairMessage } | { kind: 'reset'; code: number } | { kind: 'finished' } | { kind: 'closed' };

async function rawPeer(): Promise<Endpoint> {
  const ep = await Endpoint.bind({ secretKey: SecretKey.generate(), bindAddr: ['127.0.0.1:0'] });
  scope.add(() => ep.close({ graceMs: 0 }));
  return ep;
}

const addrOf = (c: Core): EndpointAddr => EndpointAddr.from({ id: c.networking.identity.endpointId, directAddresses: c.networking.addr().directAddresses.map(String) });

/** Send raw bytes on a new stream, finish, and read the first answer. */
async function send(conn: Connection, bytes: Uint8Array, options: { finish?: boolean } = {}): Promise<Outcome> {
  let bi;
  try {
    bi = await conn.openBi();
  } catch {
    return { kind: 'closed' };
  }
  const w = bi.writable.getWriter();
  w.write(bytes).catch(() => undefined);
  if (options.finish !== false) w.close().catch(() => undefined);
  const r = new FrameReader(bi.readable);
  try {
    const f = await r.readFrame(1 << 16);
    if (f === undefined) return { kind: 'finished' };
    return { kind: 'message', message: decodePairMessage(f) };
  } catch (err) {
    if (err instanceof StreamResetError) return { kind: 'reset', code: err.streamCode };
    return { kind: 'closed' };
  }
}

const frame = (m: PairMessage): Uint8Array => encodeFrame(encodePairMessage(m));

/** A Start with a valid share for `secret` on this connection. */
function startFor(conn: Connection, initiator: Endpoint | Core, joiner: Endpoint, r: string, secret: Uint8Array): PairMessage {
  const sid = conn.exportKeyingMaterial(PAIR_EXPORTER_LABEL, new Uint8Array(0), 32);
  const initiatorId = 'networking' in initiator ? initiator.networking.identity.endpointId : initiator.id;
  const party = new CpaceParty('A', { prs: secret, ci: channelIdentifier({ initiator: initiatorId, joiner: joiner.id, sid }), sid, ad: AD_JOINER });
  return { Start: { v: 1, r, ya: party.share } };
}

describe('hostile input to sdnet/pair/1', () => {
  it('out of order, twice, oversized, malformed, invalid shares: each refused with its code; only exchanges that got a Reply count', async () => {
    const alice = await scope.device('alice');
    const invite = await alice.networking.startPairingAsInitiator();
    const code = PairingCode.parse(invite.code);
    const mallory = await rawPeer();
    const conn = await mallory.connect(addrOf(alice), PAIR_ALPN);
    const attemptsLeft = (): number | undefined => alice.networking.pairingStatus().find((s) => s.sessionId === invite.sessionId)?.attemptsLeft;

    // A later step first: reset as malformed, not a try.
    expect(await send(conn, frame({ Confirm: { ta: new Uint8Array(64), sealed: new Uint8Array(32) } }))).toEqual({ kind: 'reset', code: StreamCode.MALFORMED_MESSAGE });
    // A reply sent to the initiator: same.
    const conn2 = await mallory.connect(addrOf(alice), PAIR_ALPN);
    expect(await send(conn2, frame({ Reply: { yb: new Uint8Array(32), tb: new Uint8Array(64) } }))).toEqual({ kind: 'reset', code: StreamCode.MALFORMED_MESSAGE });
    // An oversized length prefix: refused from the 4 header bytes.
    const conn3 = await mallory.connect(addrOf(alice), PAIR_ALPN);
    const huge = new Uint8Array(4);
    new DataView(huge.buffer).setUint32(0, 64 * 1024 * 1024);
    expect(await send(conn3, huge, { finish: false })).toEqual({ kind: 'reset', code: StreamCode.FRAME_TOO_LARGE });
    // Not JSON; an unknown tag; a Start with a share of the wrong size.
    const conn4 = await mallory.connect(addrOf(alice), PAIR_ALPN);
    expect(await send(conn4, encodeFrame(new TextEncoder().encode('{not json')))).toEqual({ kind: 'reset', code: StreamCode.MALFORMED_MESSAGE });
    const conn5 = await mallory.connect(addrOf(alice), PAIR_ALPN);
    expect(await send(conn5, encodeFrame(new TextEncoder().encode('{"Hello":{}}')))).toEqual({ kind: 'reset', code: StreamCode.UNKNOWN_MESSAGE });
    expect(await send(conn5, encodeFrame(new TextEncoder().encode(`{"Start":{"v":1,"r":"${code.rendezvousId}","ya":"AAAA"}}`)))).toEqual({ kind: 'reset', code: StreamCode.MALFORMED_MESSAGE });
    expect(attemptsLeft()).toBe(3);
    expect(alice.networking.registry.devices()).toEqual([]);

    // Invalid shares: the identity and an encoding that does not decode. Each is a try (the
    // initiator got as far as the key), answered ERR_PAIRING_INVALID_SHARE.
    const conn6 = await mallory.connect(addrOf(alice), PAIR_ALPN);
    expect(await send(conn6, frame({ Start: { v: 1, r: code.rendezvousId, ya: new Uint8Array(32) } }))).toEqual({ kind: 'message', message: { Fail: { code: 'ERR_PAIRING_INVALID_SHARE' } } });
    await until(() => attemptsLeft() === 2, 'the invalid share counted');
    const conn7 = await mallory.connect(addrOf(alice), PAIR_ALPN);
    expect(await send(conn7, frame({ Start: { v: 1, r: code.rendezvousId, ya: fromHex('2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c') } }))).toEqual({ kind: 'message', message: { Fail: { code: 'ERR_PAIRING_INVALID_SHARE' } } });
    await until(() => attemptsLeft() === 1, 'the second invalid share counted');
    expect(alice.networking.registry.devices()).toEqual([]);

    // Start twice on one stream (a Start where Confirm belongs): the exchange fails and counts —
    // the third try, which burns the code.
    const conn8 = await mallory.connect(addrOf(alice), PAIR_ALPN);
    const start = startFor(conn8, alice, mallory, code.rendezvousId, crypto.getRandomValues(new Uint8Array(12)));
    const bi = await conn8.openBi();
    const w = bi.writable.getWriter();
    await w.write(frame(start));
    const r = new FrameReader(bi.readable);
    expect(decodePairMessage((await r.readFrame(1 << 16))!)).toHaveProperty('Reply');
    await w.write(frame(start));
    expect(decodePairMessage((await r.readFrame(1 << 16))!)).toEqual({ Fail: { code: 'ERR_PAIRING_PROTOCOL' } });
    await expect(invite.paired).rejects.toMatchObject({ code: 'ERR_PAIRING_BURNT' });
    expect(alice.networking.registry.devices()).toEqual([]);

    // Still serving: an honest joiner pairs with a fresh code.
    const bob = await scope.device('bob');
    const fresh = await alice.networking.startPairingAsInitiator();
    await bob.networking.startPairingAsJoiner(fresh.qr!);
    await expect(fresh.paired).resolves.toMatchObject({ name: 'bob' });
  });

  it('floods of Starts with the right R, 30 connections at a time until the code burns: 3 replies in all, nobody stored', { timeout: 90_000 }, async () => {
    const alice = await scope.device('alice');
    const invite = await alice.networking.startPairingAsInitiator();
    const code = PairingCode.parse(invite.code);
    let ended = false;
    const burnt = invite.paired.catch((e: unknown) => e).finally(() => (ended = true));
    const peers = await Promise.all(Array.from({ length: 8 }, () => rawPeer()));
    const seen = new Map<string, number>();
    for (let wave = 0; wave < 10 && !ended; wave++) {
      const outcomes = await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          const peer = peers[i % peers.length]!;
          let conn: Connection;
          try {
            conn = await peer.connect(addrOf(alice), PAIR_ALPN);
          } catch {
            return 'refused';
          }
          const out = await send(conn, frame(startFor(conn, alice, peer, code.rendezvousId, crypto.getRandomValues(new Uint8Array(12)))), { finish: false });
          // Walk away: a Reply received is a try spent.
          conn.close(0, '');
          if (out.kind === 'message') return 'Reply' in out.message ? 'reply' : 'Fail' in out.message ? out.message.Fail.code : 'other';
          return out.kind;
        }),
      );
      for (const o of outcomes) seen.set(o, (seen.get(o) ?? 0) + 1);
      // Let the initiator count the walked-away tries before the next wave.
      await new Promise((r) => setTimeout(r, 200));
    }
    // Only ever 3 replies for one code, however many asked at once; then it burns.
    expect(seen.get('reply')).toBe(3);
    expect(await burnt).toMatchObject({ code: 'ERR_PAIRING_BURNT' });
    for (const o of seen.keys()) expect(['reply', 'ERR_PAIRING_BUSY', 'ERR_PAIRING_BURNT', 'closed', 'refused', 'reset']).toContain(o);
    await until(() => alice.networking.registry.devices().length === 0, 'no one left in the registry');
  });

  it('Starts for unknown codes are rate-limited, then served again; too many streams or connections are closed', { timeout: 60_000 }, async () => {
    const alice = await scope.device('alice');
    const mallory = await rawPeer();
    // 120 Starts for made-up codes at once, 4 per connection (the per-connection cap), from 30
    // connections opened first. The budget is 20 a second with a burst of 40: unless the 120
    // took 4 s to arrive, some are turned away.
    const flood = await Promise.all(Array.from({ length: 30 }, () => mallory.connect(addrOf(alice), PAIR_ALPN)));
    const outcomes = await Promise.all(flood.flatMap((conn) => Array.from({ length: 4 }, () => send(conn, frame({ Start: { v: 1, r: PairingCode.generate().rendezvousId, ya: new Uint8Array(32) } })))));
    const codes = outcomes.map((o) => (o.kind === 'message' && 'Fail' in o.message ? o.message.Fail.code : o.kind));
    for (const conn of flood) conn.close(0, '');
    expect(codes.filter((c) => c === 'ERR_PAIRING_NOT_FOUND').length).toBeGreaterThan(0);
    expect(codes).toContain('ERR_PAIRING_BUSY');
    for (const c of codes) expect(['ERR_PAIRING_NOT_FOUND', 'ERR_PAIRING_BUSY']).toContain(c);
    // The budget refills.
    await new Promise((r) => setTimeout(r, 1500));
    const later = await mallory.connect(addrOf(alice), PAIR_ALPN);
    expect(await send(later, frame({ Start: { v: 1, r: '00000000', ya: new Uint8Array(32) } }))).toEqual({ kind: 'message', message: { Fail: { code: 'ERR_PAIRING_NOT_FOUND' } } });

    // A fifth stream on one connection closes it.
    const greedy = await mallory.connect(addrOf(alice), PAIR_ALPN);
    for (let i = 0; i < 4; i++) await send(greedy, frame({ Start: { v: 1, r: '00000000', ya: new Uint8Array(32) } }));
    await send(greedy, frame({ Start: { v: 1, r: '00000000', ya: new Uint8Array(32) } }));
    expect((await greedy.closed).applicationCode).toBe(CloseCode.TOO_MANY_CONNECTIONS);

    // More than 32 unpaired pairing connections at once: the extra ones are closed.
    const conns = await Promise.all(Array.from({ length: 40 }, async () => (await rawPeer()).connect(addrOf(alice), PAIR_ALPN).catch(() => undefined)));
    const closedCodes = await Promise.all(conns.map((c) => (c === undefined ? Promise.resolve(undefined) : Promise.race([c.closed.then((e) => e.applicationCode), new Promise<undefined>((r) => setTimeout(() => r(undefined), 1500))]))));
    expect(closedCodes.filter((c) => c === CloseCode.TOO_MANY_CONNECTIONS).length).toBeGreaterThanOrEqual(8);
    for (const c of conns) c?.close(0, '');
    expect(alice.networking.registry.devices()).toEqual([]);
  });
});
