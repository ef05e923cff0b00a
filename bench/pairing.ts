/**
 * Pairing benchmark (issue 13): code entry to `paired` on loopback — the time from
 * `startPairingAsJoiner(code)` to its resolution with the initiator stored — for
 *   - `direct`: the QR payload (the initiator's id and direct addresses), one UDP dial;
 *   - `typed words, direct`: the words only, found through the relay's rendezvous, then UDP;
 *   - `via relay`: the words only, both devices relay-only (no UDP socket at all), so the
 *     lookup and the whole exchange go through the relay.
 * Goal: ≤ 300 ms (the CPace math is a few ms of it).
 *
 * Anchors measured in the same run, to read the figures as ratios rather than absolutes:
 * the CPace computation of both sides (one party each, share + finish), and a bare QUIC
 * connect (handshake to an open connection) direct and through the relay — a pairing is a
 * connect plus two round trips, a registry write (fsync) and the CPace math.
 *
 * Both devices live in this one process (they share its CPU); the relay too. Medians (and
 * p90) of `SDNET_BENCH_RUNS` runs (default 15; `SDNET_BENCH_QUICK=1`: 5).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Endpoint } from '../src/endpoint/endpoint.ts';
import { EndpointAddr } from '../src/identity/endpoint-addr.ts';
import { SecretKey } from '../src/identity/keys.ts';
import { CpaceParty } from '../src/protocols/pairing/cpace.ts';
import { pairingModule } from '../src/protocols/pairing/module.ts';
import { Core, type CoreOptions } from '../src/service/index.ts';
import { startRelayServer } from '../relay-server/src/index.ts';
import { report, timeIt } from './harness.ts';

const BENCH = 'pairing';
const quick = process.env.SDNET_BENCH_QUICK === '1';
const runs = Math.max(1, Math.round(Number(process.env.SDNET_BENCH_RUNS ?? '') || (quick ? 5 : 15)));
const GOAL_MS = 300;

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const p90 = (v: readonly number[]): number => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * 0.9))]!;
const round = (x: number, d = 2): number => Number(x.toFixed(d));
const line = (name: string, fields: Record<string, unknown>): void => console.log(JSON.stringify({ bench: BENCH, name, ...fields }));

const root = mkdtempSync(join(tmpdir(), 'sdnet-bench-pairing-'));
// Every device here comes from 127.0.0.1: the relay's per-address limits (meant for many hosts)
// would refuse the rendezvous requests of later runs, as other benches turn them off.
const relay = await startRelayServer({ host: '127.0.0.1', port: 0, rateLimit: false, rendezvous: { requestsPerSecond: 0 }, limits: { acceptRatePerIp: 0, maxConnectionsPerIp: 0, maxHandshakingPerIp: 0 } });
const timing = { healthIntervalMs: 60_000 };

try {
  // ---------------------------------------------------------------- anchors
  const cpaceNs = timeIt(
    () => {
      const inputs = { prs: new Uint8Array(12).fill(7), ci: new Uint8Array(70), sid: new Uint8Array(32) };
      const a = new CpaceParty('A', { ...inputs, ad: new Uint8Array(1) });
      const b = new CpaceParty('B', { ...inputs, ad: new Uint8Array(2) });
      a.finish(b.share, new Uint8Array(2));
      b.finish(a.share, new Uint8Array(1));
    },
    { targetMs: 300, runs: 5 },
  );
  report({ bench: BENCH, name: 'anchor CPace math, both sides (share + finish each)', nsPerOp: cpaceNs });

  const server = await Endpoint.bind({ secretKey: SecretKey.generate(), bindAddr: ['127.0.0.1:0'], relays: [relay.url], alpns: ['bench/anchor'] });
  await server.online();
  void (async () => {
    for await (const inc of server.accept()) void inc.accept().catch(() => undefined);
  })();
  const client = await Endpoint.bind({ secretKey: SecretKey.generate(), bindAddr: ['127.0.0.1:0'], relays: [relay.url] });
  const relayClient = await Endpoint.bind({ secretKey: SecretKey.generate(), bindAddr: [], relays: [relay.url] });
  await relayClient.online();
  const connectMs = async (ep: Endpoint, addr: EndpointAddr): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < runs + 2; i++) {
      const t0 = performance.now();
      const c = await ep.connect(addr, 'bench/anchor');
      const dt = performance.now() - t0;
      c.close(0, '');
      if (i >= 2) out.push(dt); // two warm-ups
    }
    return out;
  };
  const direct = await connectMs(client, EndpointAddr.from({ id: server.id, directAddresses: server.addr().directAddresses.map(String) }));
  const viaRelay = await connectMs(relayClient, EndpointAddr.from({ id: server.id, relayUrls: [relay.url] }));
  line('anchor QUIC connect direct (loopback)', { runs, medianMs: round(median(direct)), p90Ms: round(p90(direct)) });
  line('anchor QUIC connect via relay (loopback)', { runs, medianMs: round(median(viaRelay)), p90Ms: round(p90(viaRelay)) });
  await Promise.all([server.close({ graceMs: 0 }), client.close({ graceMs: 0 }), relayClient.close({ graceMs: 0 })]);

  // ---------------------------------------------------------------- pairings
  let n = 0;
  const device = async (name: string, extra: Partial<CoreOptions>): Promise<Core> =>
    Core.init({ dataDir: join(root, `${name}-${n++}`), name, timing, modules: { pairing: pairingModule({ lookupIntervalMs: 50 }) }, ...extra });

  const scenario = async (name: string, options: Partial<CoreOptions>, input: (invite: { code: string; qr?: string }) => string, anchor: number[]): Promise<void> => {
    const alice = await device('alice', options);
    const bob = await device('bob', options);
    if ((options.relays ?? []).length > 0) await Promise.all([alice.networking.endpoint.online(), bob.networking.endpoint.online()]);
    const joiner: number[] = [];
    const initiator: number[] = [];
    try {
      for (let i = 0; i < runs + 1; i++) {
        const invite = await alice.networking.startPairingAsInitiator();
        // Let the rendezvous registration land (a user reads the words meanwhile).
        await new Promise((r) => setTimeout(r, 100));
        const text = input(invite);
        const t0 = performance.now();
        const both = invite.paired.then(() => performance.now() - t0);
        // If the joiner fails, the shutdown below cancels this invite: that rejection must not
        // surface as an unhandled one and hide the joiner's error.
        both.catch(() => undefined);
        await bob.networking.startPairingAsJoiner(text);
        const dt = performance.now() - t0;
        const dg = await both;
        if (i > 0) {
          // The first run warms caches and JIT.
          joiner.push(dt);
          initiator.push(dg);
        }
        // Forget each other for the next run.
        await alice.networking.unpair(bob.networking.identity.endpointId);
        await bob.networking.unpair(alice.networking.identity.endpointId);
      }
    } finally {
      await Promise.all([alice.shutdown(), bob.shutdown()]);
    }
    const m = median(joiner);
    line(name, {
      runs,
      medianMs: round(m),
      p90Ms: round(p90(joiner)),
      initiatorPairedMedianMs: round(median(initiator)),
      goalMs: GOAL_MS,
      withinGoal: m <= GOAL_MS,
      ratioToConnect: round(m / median(anchor)),
      cpaceShare: round(cpaceNs / 1e6 / m, 3),
    });
  };

  await scenario('code entry → paired, direct (QR payload)', { bind: ['127.0.0.1:0'] }, (inv) => inv.qr!, direct);
  await scenario('code entry → paired, typed words via rendezvous, then direct', { bind: ['127.0.0.1:0'], relays: [relay.url] }, (inv) => inv.code, direct);
  await scenario('code entry → paired, typed words, relay only (no UDP)', { bind: [], relays: [relay.url] }, (inv) => inv.code, viaRelay);
} finally {
  await relay.close({ graceful: false });
  rmSync(root, { recursive: true, force: true });
}
