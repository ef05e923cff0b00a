/**
 * The mDNS socket handler under hostile packets, over real UDP sockets: random bytes and
 * mutations of a valid iroh answer from fast-check (seed printed), compression loops and
 * truncated records, a flood beyond the per-socket rate, and more distinct peers than the
 * bound. Nothing escapes the handler (handlerErrors stays 0, the process keeps running),
 * floods are dropped, the peer table stays within its bound, and an honest answer sent after
 * all of it is still heard.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SecretKey } from '../../src/identity/keys.ts';
import { SocketAddr } from '../../src/identity/socket-addr.ts';
import { encodeMdnsAnswer, MdnsDiscovery } from '../../src/discovery/mdns.ts';
import { MAX_MDNS_PEERS } from '../../src/discovery/limits.ts';
import { fcParams } from '../helpers/seed.ts';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function start(): Promise<{ mdns: MdnsDiscovery; port: number; send: (b: Uint8Array) => Promise<void>; blast: (b: Uint8Array) => void }> {
  // A port of its own (not 5353): only this test's packets arrive.
  const port = 20000 + Math.floor(Math.random() * 20000);
  const errors: unknown[] = [];
  const mdns = await MdnsDiscovery.start({ id: SecretKey.generate().public(), ports: () => ({}), port, onError: (e) => errors.push(e) });
  closers.push(() => mdns.close());
  const tx = dgram.createSocket('udp4');
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', r));
  closers.push(() => tx.close());
  const send = (b: Uint8Array): Promise<void> => new Promise((resolve) => tx.send(b, port, '127.0.0.1', () => resolve()));
  const blast = (b: Uint8Array): void => tx.send(b, port, '127.0.0.1');
  return { mdns, port, send, blast };
}

const honest = (key: SecretKey) => encodeMdnsAnswer({ id: key.public(), addrs: [SocketAddr.parse('192.168.7.9:4433')], userData: 'hello' });

async function heard(mdns: MdnsDiscovery, send: (b: Uint8Array) => Promise<void>, key: SecretKey): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!mdns.peers().some((p) => p.id.equals(key.public()))) {
    if (Date.now() > deadline) throw new Error('the honest answer was not heard');
    await send(honest(key));
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('mDNS handler, hostile packets', () => {
  it('fuzzed packets never throw out of the socket handler; an honest answer is heard afterwards', async () => {
    const { mdns, send } = await start();
    const valid = honest(SecretKey.generate());
    const packets: Uint8Array[] = [];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        packets.push(b);
      }),
      fcParams('mdns random packets', 300),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (edits) => {
        const b = valid.slice();
        for (const [i, v] of edits) b[i] = v;
        packets.push(b);
      }),
      fcParams('mdns mutated answers', 300),
    );
    // A compression loop and a truncated record.
    packets.push(new Uint8Array([0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 0, 0, 6]));
    packets.push(valid.subarray(0, valid.length - 3));
    // Paced under the rate limit so they are all decoded.
    for (let i = 0; i < packets.length; i += 50) {
      await Promise.all(packets.slice(i, i + 50).map(send));
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(mdns.stats.handlerErrors).toBe(0);
    expect(mdns.stats.malformed).toBeGreaterThan(0);
    await heard(mdns, send, SecretKey.generate());
    expect(mdns.stats.handlerErrors).toBe(0);
  });

  it('a flood is dropped beyond the rate, and many distinct peers stay within the bound', async () => {
    const { mdns, send, blast } = await start();
    const keys = Array.from({ length: MAX_MDNS_PEERS + 100 }, () => SecretKey.generate());
    const answers = keys.map(honest);
    // All at once, several times over, without waiting: far over the per-socket rate.
    // (Bursts of 100 every 20 ms: the socket's receive buffer holds a burst, the rate is ~5,000/s.)
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 100; i++) blast(answers[(round * 100 + i) % answers.length]!);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(mdns.stats.rateLimited, JSON.stringify(mdns.stats)).toBeGreaterThan(0);
    // Then paced: every one is heard, the table keeps its bound.
    for (let i = 0; i < answers.length; i += 40) {
      await Promise.all(answers.slice(i, i + 40).map(send));
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(mdns.peers().length).toBeLessThanOrEqual(MAX_MDNS_PEERS);
    expect(mdns.peers().length).toBeGreaterThan(MAX_MDNS_PEERS / 2);
    expect(mdns.stats.handlerErrors).toBe(0);
    await heard(mdns, send, SecretKey.generate());
  });
});
