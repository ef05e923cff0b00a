/**
 * No busy loop while the anti-amplification limit blocks sending (issue 11 item 2).
 *
 * A spoofed 1200-byte ClientHello makes the server answer an address that never replies; its
 * PTOs spend the 3× budget (RFC 9000 §8.1). A 47-byte Initial PING from the same address then
 * asks for an immediate ACK that the remaining budget cannot carry. The ACK deadline used to
 * stay in the past, so the driver re-armed setImmediate for it ~300,000 times a second until
 * the handshake timed out. A blocked endpoint arms no timer it cannot serve (RFC 9002
 * §6.2.2.1), and a driver pass that does no work never schedules an immediate pass.
 *
 * The driver runs on real timers here: the assertions count its passes and armed timers over
 * a window (never CPU time or durations).
 */
import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { EndpointDriver } from '../../src/transport/io/driver.ts';
import type { QuicEndpoint } from '../../src/transport/quic/endpoint.ts';
import { Arena } from './arena.ts';
import { F } from './raw-peer.ts';

const MIN_DATAGRAM = 1200;

describe('an endpoint blocked by the anti-amplification limit does not spin', () => {
  it('core: once the budget is spent, the 47-byte Initial PING leaves no deadline due', () => {
    const arena = new Arena();
    const victim = arena.peer('victim');
    const hello = victim.initialDatagram();
    expect(hello.length).toBe(MIN_DATAGRAM);
    arena.deliver('victim', hello);
    arena.pump();
    // The server's PTOs repeat its flight until three times the 1200 bytes are spent.
    const sentBytes = () => arena.sent.reduce((n, t) => n + t.data.length, 0);
    for (let i = 0; i < 10 && sentBytes() < 3 * MIN_DATAGRAM; i++) {
      const t = arena.server.pollTimeout();
      expect(t).toBeDefined();
      arena.now = t!;
      arena.server.handleTimeout(arena.now);
      arena.pump();
    }
    expect(sentBytes()).toBe(3 * MIN_DATAGRAM);
    // Blocked: RFC 9002 §A.8 arms no PTO, only the handshake timeout remains.
    expect(arena.server.pollTimeout()! - arena.now).toBeGreaterThan(1_000_000);

    const ping = victim.packet('initial', [F.ping()]);
    expect(ping.length).toBe(47);
    arena.now += 1000;
    arena.deliver('victim', ping);
    // 3 × 47 bytes of new budget cannot carry a server Initial (a padded 1200-byte datagram).
    expect(arena.pump()).toEqual([]);
    const due = arena.server.pollTimeout();
    expect(due).toBeDefined();
    expect(due!).toBeGreaterThan(arena.now);
    // Spurious timer calls change nothing and send nothing.
    for (let i = 0; i < 100; i++) arena.server.handleTimeout(arena.now);
    expect(arena.pump()).toEqual([]);
    expect(arena.server.pollTimeout()).toBe(due);
    expect(sentBytes()).toBe(3 * MIN_DATAGRAM);

    // A full-size datagram from the address unblocks it: the owed ACK goes out then.
    arena.deliver('victim', victim.packet('initial', [F.ping()], { padTo: MIN_DATAGRAM }));
    expect(arena.pump().length).toBeGreaterThan(0);
  });

  it('driver on real timers: passes and armed timers stay few while blocked', async () => {
    // A short initial RTT makes the server's PTOs spend the budget within ~100 ms.
    const arena = new Arena({ settings: { initialRtt: 5_000 } });
    const sent: number[] = [];
    const driver = new EndpointDriver(arena.server, { send: (d) => sent.push(d.length) });
    try {
      const victim = arena.peer('victim');
      driver.receive(victim.initialDatagram(), { key: 'victim' });
      for (let i = 0; i < 100 && sent.reduce((a, b) => a + b, 0) < 3 * MIN_DATAGRAM; i++) await sleep(20);
      expect(sent.reduce((a, b) => a + b, 0)).toBe(3 * MIN_DATAGRAM);

      driver.receive(victim.packet('initial', [F.ping()]), { key: 'victim' });
      const before = { ...driver.counters };
      await sleep(300);
      const passes = driver.counters.passes - before.passes;
      const immediates = driver.counters.immediates - before.immediates;
      const timeouts = driver.counters.timeouts - before.timeouts;
      // Before the fix: tens of thousands of immediate passes in this window. Now only timers
      // run: the PTO with its backoff (15, 30, 60, 120 ms at this RTT: the 141 bytes of budget
      // left are not "blocked" for it) and the driver's own backoff — about 10 passes, which a
      // loaded CI machine reached; 30 still tells timers from a spin.
      expect(passes, `passes ${passes}, immediates ${immediates}, timeouts ${timeouts}`).toBeLessThan(30);
      expect(immediates).toBe(0);
      expect(timeouts).toBeLessThan(30);
      expect(sent.reduce((a, b) => a + b, 0)).toBe(3 * MIN_DATAGRAM);
    } finally {
      driver.close();
    }
  });

  it('driver: a deadline the core never clears is retried with backoff, not in a loop', async () => {
    // Fault injection: a core that reports a deadline in the past forever and never has
    // anything to send. Whatever the core does, the driver must not spin on it.
    let calls = 0;
    const stuck = {
      pollTimeout: () => 1,
      handleTimeout: () => {
        calls++;
      },
      pollTransmit: () => undefined,
      pollIncoming: () => undefined,
    } as unknown as QuicEndpoint;
    const driver = new EndpointDriver(stuck, { send: () => {} });
    try {
      driver.schedule();
      await sleep(300);
      // Backoff 1, 2, 4, ... ms: about 9 passes in 300 ms (a spin would be tens of thousands).
      expect(driver.counters.passes).toBeLessThan(20);
      expect(driver.counters.passes).toBeGreaterThan(1);
      expect(driver.counters.immediates).toBe(0);
      expect(calls).toBe(driver.counters.passes);
    } finally {
      driver.close();
    }
  });
});
