/**
 * The pairing module between two in-process devices on loopback, dialling by the QR payload
 * (the initiator's id and direct addresses): a pairing end to end (registry, link key, events,
 * messaging afterwards); a wrong secret with the right R (nothing stored, the code still
 * works); three wrong tries burn the code; expiry; cancel; a second joiner after the code was
 * used; the status listing; unpairing cuts messaging; a never-paired device is refused before
 * any handler runs.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EndpointAddr } from '../../src/identity/endpoint-addr.ts';
import { CloseCode, MESSAGING_ALPN } from '../../src/protocols/index.ts';
import { PairingError } from '../../src/protocols/pairing/errors.ts';
import { PairingCode } from '../../src/protocols/pairing/code.ts';
import { startTestRelay, until, failOnEscapes } from '../helpers/relay-test-utils.ts';
import type { Core } from '../../src/service/index.ts';
import type { LogEntry } from '../../src/util/log.ts';
import type { PairingDiscovery } from '../../src/protocols/pairing/discovery.ts';
import { collectProgress, sameRendezvousOtherSecret, Scope, withWords } from '../helpers/pairing.ts';

failOnEscapes();
const scope = new Scope();
afterEach(() => scope.cleanupAll());

async function rejection(p: Promise<unknown>): Promise<PairingError> {
  try {
    await p;
  } catch (err) {
    return err as PairingError;
  }
  throw new Error('expected a rejection');
}

describe('pairing by QR payload on loopback', () => {
  it('pairs: both registries hold each other as paired with the same link key; events; messages flow', async () => {
    const alice = await scope.device('alice');
    const bob = await scope.device('bob');
    const pa = collectProgress(alice);
    const pb = collectProgress(bob);
    const invite = await alice.networking.startPairingAsInitiator();
    expect(invite.code.split(' ')).toHaveLength(12);
    const qr = JSON.parse(invite.qr!) as { node_id: string; addrs: string[]; words: string };
    expect(qr.node_id).toBe(alice.networking.identity.endpointId.toString());
    expect(qr.words).toBe(invite.code);
    expect(alice.networking.pairingStatus()).toEqual([expect.objectContaining({ sessionId: invite.sessionId, role: 'initiator', state: 'waiting', attemptsLeft: 3 })]);

    const joined = await bob.networking.startPairingAsJoiner(invite.qr!);
    const atAlice = await invite.paired;
    expect(joined).toMatchObject({ endpointId: alice.networking.identity.endpointId.toString(), name: 'alice', state: 'paired' });
    expect(atAlice).toMatchObject({ endpointId: bob.networking.identity.endpointId.toString(), name: 'bob', state: 'paired' });
    const idA = alice.networking.identity.endpointId;
    const idB = bob.networking.identity.endpointId;
    const ka = alice.networking.registry.linkKey(idB)!;
    const kb = bob.networking.registry.linkKey(idA)!;
    expect(ka).toHaveLength(32);
    expect(Buffer.from(ka).toString('hex')).toBe(Buffer.from(kb).toString('hex'));
    expect(pa.map((p) => p.stage)).toEqual(['code-generated', 'peer-found', 'key-confirmed', 'paired']);
    expect(pb.map((p) => p.stage)).toEqual(['searching', 'peer-found', 'key-confirmed', 'paired']);
    expect(pa.at(-1)).toMatchObject({ role: 'initiator', peer: { endpointId: idB.toString(), name: 'bob' } });
    // The status keeps the finished session, without secrets.
    const status = alice.networking.pairingStatus();
    expect(status[0]).toMatchObject({ sessionId: invite.sessionId, state: 'paired', peer: { name: 'bob' } });
    expect(JSON.stringify(status)).not.toContain(invite.code.split(' ')[5]!);

    await until(() => alice.networking.registry.get(idB)?.state === 'connected' && bob.networking.registry.get(idA)?.state === 'connected', 'connected both ways', 10_000);
    const got = bob.networking.next('message-received');
    await alice.networking.sendMessage(idB, 'hello after pairing');
    expect((await got).payload).toBe('hello after pairing');

    // Single use: a second joiner with the same code is told so.
    const carol = await scope.device('carol');
    const e = await rejection(carol.networking.startPairingAsJoiner(invite.qr!));
    expect(e.code).toBe('ERR_PAIRING_CODE_USED');
    expect(alice.networking.registry.get(carol.networking.identity.endpointId)).toBeUndefined();
  });

  it('a wrong secret with the right R: ERR_PAIRING_WRONG_CODE, nothing stored on either side, the right code still pairs', async () => {
    const alice = await scope.device('alice');
    const bob = await scope.device('bob');
    const pa = collectProgress(alice);
    const invite = await alice.networking.startPairingAsInitiator();
    const wrong = withWords(invite.qr!, sameRendezvousOtherSecret(invite.code));
    const e = await rejection(bob.networking.startPairingAsJoiner(wrong));
    expect(e).toBeInstanceOf(PairingError);
    expect(e.code).toBe('ERR_PAIRING_WRONG_CODE');
    const idA = alice.networking.identity.endpointId;
    const idB = bob.networking.identity.endpointId;
    await until(() => alice.networking.registry.get(idB) === undefined, 'the joiner forgotten at the initiator');
    expect(bob.networking.registry.get(idA)).toBeUndefined();
    expect(alice.networking.registry.devices()).toEqual([]);
    expect(bob.networking.registry.devices()).toEqual([]);
    expect(pa.find((p) => p.stage === 'failed')).toMatchObject({ error: { code: 'ERR_PAIRING_WRONG_CODE' }, attemptsLeft: 2 });
    expect(alice.networking.pairingStatus()[0]).toMatchObject({ state: 'waiting', attemptsLeft: 2 });
    // The right code pairs next.
    await bob.networking.startPairingAsJoiner(invite.qr!);
    await expect(invite.paired).resolves.toMatchObject({ name: 'bob' });
  });

  it('the third wrong try burns the code; later tries are told it is burnt', async () => {
    const alice = await scope.device('alice');
    const bob = await scope.device('bob');
    const invite = await alice.networking.startPairingAsInitiator();
    const burnt = rejection(invite.paired);
    for (let i = 0; i < 3; i++) {
      const e = await rejection(bob.networking.startPairingAsJoiner(withWords(invite.qr!, sameRendezvousOtherSecret(invite.code))));
      expect(e.code).toBe('ERR_PAIRING_WRONG_CODE');
    }
    expect((await burnt).code).toBe('ERR_PAIRING_BURNT');
    const after = await rejection(bob.networking.startPairingAsJoiner(invite.qr!));
    expect(after.code).toBe('ERR_PAIRING_BURNT');
    expect(alice.networking.registry.devices()).toEqual([]);
    expect(bob.networking.registry.devices()).toEqual([]);
    expect(alice.networking.pairingStatus()[0]).toMatchObject({ state: 'burnt', attemptsLeft: 0, error: { code: 'ERR_PAIRING_BURNT' } });
  });

  it('expiry and cancel end the code', async () => {
    const alice = await scope.device('alice', { pairing: { codeTtlMs: 400 } });
    const bob = await scope.device('bob');
    const invite = await alice.networking.startPairingAsInitiator();
    expect((await rejection(invite.paired)).code).toBe('ERR_PAIRING_EXPIRED');
    expect((await rejection(bob.networking.startPairingAsJoiner(invite.qr!))).code).toBe('ERR_PAIRING_EXPIRED');

    const second = await alice.networking.startPairingAsInitiator({ ttlMs: 60_000 });
    expect(alice.networking.cancelPairing(second.sessionId)).toBe(true);
    expect(alice.networking.cancelPairing(second.sessionId)).toBe(false);
    expect((await rejection(second.paired)).code).toBe('ERR_PAIRING_CANCELLED');
    expect((await rejection(bob.networking.startPairingAsJoiner(second.qr!))).code).toBe('ERR_PAIRING_CANCELLED');

    // A code alice does not show: she answers "not found".
    const unknown = withWords(second.qr!, PairingCode.generate().words);
    expect((await rejection(bob.networking.startPairingAsJoiner(unknown))).code).toBe('ERR_PAIRING_NOT_FOUND');
    // Typed words with no relay and no LAN discovery: nobody to ask, not found at the deadline.
    expect((await rejection(bob.networking.startPairingAsJoiner(PairingCode.generate().words, { timeoutMs: 500 }))).code).toBe('ERR_PAIRING_NOT_FOUND');
  });

  it('a malformed code fails before any network', async () => {
    const bob = await scope.device('bob');
    const before = bob.networking.endpoint.stats();
    const e = await rejection(bob.networking.startPairingAsJoiner('abandon abandon abandon'));
    expect(e.code).toBe('ERR_PAIRING_CODE_MALFORMED');
    expect(bob.networking.endpoint.stats()).toEqual(before);
  });
});

describe('pairing devices that are paired already', () => {
  it('is refused on either side, without spending a try, until both unpair', async () => {
    const alice = await scope.device('alice');
    const bob = await scope.device('bob');
    const first = await alice.networking.startPairingAsInitiator();
    await bob.networking.startPairingAsJoiner(first.qr!);
    await first.paired;
    const idA = alice.networking.identity.endpointId;
    const idB = bob.networking.identity.endpointId;
    // Bob still holds Alice: he refuses before any exchange.
    const second = await alice.networking.startPairingAsInitiator();
    expect((await rejection(bob.networking.startPairingAsJoiner(second.qr!))).code).toBe('ERR_PAIRING_ALREADY_PAIRED');
    // Bob forgets Alice, Alice still holds Bob: she refuses his Start; no try is spent.
    await bob.networking.unpair(idA);
    const e = await rejection(bob.networking.startPairingAsJoiner(second.qr!));
    expect(e.code).toBe('ERR_PAIRING_ALREADY_PAIRED');
    expect(e.message).toContain('unpair');
    expect(alice.networking.pairingStatus()[0]).toMatchObject({ sessionId: second.sessionId, state: 'waiting', attemptsLeft: 3 });
    // Both forget: they pair again, with a new link key.
    const oldKey = Buffer.from(alice.networking.registry.linkKey(idB)!).toString('hex');
    await alice.networking.unpair(idB);
    await bob.networking.startPairingAsJoiner(second.qr!);
    await second.paired;
    expect(Buffer.from(alice.networking.registry.linkKey(idB)!).toString('hex')).not.toBe(oldKey);
  });
});

describe('the pairing gate', () => {
  it('after unpairing, the other device can no longer reach messaging', async () => {
    const alice = await scope.device('alice');
    const bob = await scope.device('bob');
    const invite = await alice.networking.startPairingAsInitiator();
    await bob.networking.startPairingAsJoiner(invite.qr!);
    await invite.paired;
    const idA = alice.networking.identity.endpointId;
    const idB = bob.networking.identity.endpointId;
    await until(() => bob.networking.registry.get(idA)?.state === 'connected', 'connected');
    await alice.networking.unpair(idB);
    // Bob still believes in the pairing; alice refuses him before any handler.
    const bobAddr = EndpointAddr.from({ id: idA, directAddresses: alice.networking.addr().directAddresses.map(String) });
    const conn = await bob.networking.endpoint.connect(bobAddr, MESSAGING_ALPN);
    const closed = await conn.closed;
    expect(closed.applicationCode).toBe(CloseCode.NOT_PAIRED);
    await expect(bob.networking.sendMessage(idA, 'still there?', { timeoutMs: 3000 })).rejects.toMatchObject({ code: expect.stringMatching(/ERR_DEVICE_UNREACHABLE|ERR_MESSAGING/) });
  });

  it('a device that was never paired is refused on messaging before any handler runs', async () => {
    const alice = await scope.device('alice');
    const mallory = await scope.device('mallory');
    let handled = 0;
    alice.networking.on('message-received', () => handled++);
    alice.networking.onRequest(() => {
      handled++;
      return null;
    });
    const conn = await mallory.networking.endpoint.connect(EndpointAddr.from({ id: alice.networking.identity.endpointId, directAddresses: alice.networking.addr().directAddresses.map(String) }), MESSAGING_ALPN);
    const closed = await conn.closed;
    expect(closed.applicationCode).toBe(CloseCode.NOT_PAIRED);
    expect(handled).toBe(0);
    expect(alice.networking.registry.devices()).toEqual([]);
  });
});

describe('finding the initiator from typed words', () => {
  it('via the relays\' rendezvous: registered while the code is shown, withdrawn when it ends', async () => {
    const relay = await startTestRelay();
    scope.add(() => relay.close({ graceful: false }));
    const alice = await scope.device('alice', { relays: [relay.url] });
    const bob = await scope.device('bob', { relays: [relay.url] });
    await alice.networking.endpoint.online();
    const invite = await alice.networking.startPairingAsInitiator();
    await until(() => relay.rendezvous!.stats().records === 1, 'R registered');
    const joined = await bob.networking.startPairingAsJoiner(invite.code);
    expect(joined.name).toBe('alice');
    await invite.paired;
    await until(() => relay.rendezvous!.stats().records === 0, 'R withdrawn after pairing');
    // Cancelled and expired codes are withdrawn too.
    const second = await alice.networking.startPairingAsInitiator();
    await until(() => relay.rendezvous!.stats().records === 1, 'second R registered');
    second.cancel();
    await until(() => relay.rendezvous!.stats().records === 0, 'R withdrawn after cancel');
    expect(relay.rendezvous!.stats().withdrawn).toBe(2);
  });

  it('a rendezvous registration the relay refuses at first (its per-address accept rate) is tried again until it lands, and the words then pair', async () => {
    // One new TCP connection per second per address, a burst of 4: the devices' relay
    // connections and the drain below use it up, so the first registration is refused.
    const relay = await startTestRelay({ limits: { acceptRatePerIp: 1, acceptBurstPerIp: 4 } });
    scope.add(() => relay.close({ graceful: false }));
    const warnings: LogEntry[] = [];
    const alice = await scope.device('alice', { relays: [relay.url], log: (e) => warnings.push(e), logLevel: 'warn' });
    const bob = await scope.device('bob', { relays: [relay.url] });
    await Promise.all([alice.networking.endpoint.online(), bob.networking.endpoint.online()]);
    const port = Number(new URL(relay.url).port);
    for (let i = 0; i < 6; i++) {
      await new Promise<void>((resolve) => {
        const sock = connect(port, '127.0.0.1', () => sock.destroy());
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
      });
    }
    const invite = await alice.networking.startPairingAsInitiator();
    await until(() => relay.rendezvous!.stats().records === 1, 'R registered after a refusal', 15_000);
    const failed = warnings.filter((e) => e.message === 'pairing: rendezvous registration failed');
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed[0]).toMatchObject({ relay: relay.url, retryInMs: 250 });
    const joined = await bob.networking.startPairingAsJoiner(invite.code);
    expect(joined.name).toBe('alice');
    await invite.paired;
  });

  it('via a LAN discovery (the interface mDNS fills): advertised, found, withdrawn', async () => {
    // An in-process stand-in for the LAN: what one device advertises, the other hears.
    const lan = new Map<string, EndpointAddr>();
    const listeners = new Set<() => void>();
    const owner: { core?: Core } = {};
    const discovery: PairingDiscovery = {
      name: 'test-lan',
      advertise: (r) => {
        lan.set(r, owner.core!.networking.addr());
        for (const l of listeners) l();
        return () => void lan.delete(r);
      },
      async *lookup(r, signal) {
        while (!signal.aborted) {
          const found = lan.get(r);
          if (found) {
            yield found;
            return;
          }
          await new Promise<void>((resolve) => {
            listeners.add(resolve);
            signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
      },
    };
    const alice = await scope.device('alice', { pairing: { discovery: [discovery] } });
    owner.core = alice;
    const bob = await scope.device('bob', { pairing: { discovery: [discovery] } });
    const invite = await alice.networking.startPairingAsInitiator();
    const joining = bob.networking.startPairingAsJoiner(invite.code);
    expect(await joining).toMatchObject({ name: 'alice', state: 'paired' });
    await invite.paired;
    await until(() => lan.size === 0, 'R no longer advertised');
  });

  it('a join ends once paired, without waiting for a LAN lookup that never ends by itself (regression: 30 s held after pairing)', async () => {
    // mDNS's lookup goes on hearing until its signal ends; the join must end it, not wait.
    const lan = new Map<string, EndpointAddr>();
    const owner: { core?: Core } = {};
    const lookupSignals: AbortSignal[] = [];
    const discovery: PairingDiscovery = {
      name: 'endless-lan',
      advertise: (r) => {
        lan.set(r, owner.core!.networking.addr());
        return () => void lan.delete(r);
      },
      async *lookup(r, signal) {
        lookupSignals.push(signal);
        while (!signal.aborted) {
          const found = lan.get(r);
          if (found) yield found;
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 100);
            signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
          });
        }
      },
    };
    const alice = await scope.device('alice', { pairing: { discovery: [discovery] } });
    owner.core = alice;
    const bob = await scope.device('bob', { pairing: { discovery: [discovery], joinTimeoutMs: 600_000 } });
    const invite = await alice.networking.startPairingAsInitiator();
    // A ten-minute join timeout: only the join's own end can stop the lookup within the test.
    expect(await bob.networking.startPairingAsJoiner(invite.code, { timeoutMs: 600_000 })).toMatchObject({ name: 'alice', state: 'paired' });
    expect(lookupSignals.length).toBeGreaterThan(0);
    expect(lookupSignals.every((sig) => sig.aborted)).toBe(true);
    await invite.paired;
  });
});
