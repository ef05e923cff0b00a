/**
 * Discovery benchmark (issue 15):
 *
 * - `up→discovered`: a LAN peer runs mDNS; a new endpoint binds and starts its mDNS (what
 *   `sdnet up` does after loading its identity); the time until the peer hears it. Goal ≤ 1 s.
 *   Over this host's multicast (loopback delivery), on a private mDNS port.
 * - `resolve`: `sdnet-relay` in process with a published record; the time of one pkarr
 *   resolve (GET /pkarr/<z32>, signature verified, record parsed) against the anchor of one
 *   plain HTTP round trip (GET /ping) to the same relay on a fresh connection, in the same
 *   run. Goal: resolve ≤ 2 × the round trip.
 *
 * Medians (and p90) of `SDNET_BENCH_RUNS` runs (default 15; `SDNET_BENCH_QUICK=1`: 5).
 */
import http from 'node:http';
import { Endpoint } from '../src/endpoint/endpoint.ts';
import { SecretKey } from '../src/identity/keys.ts';
import { RelayUrl } from '../src/identity/relay-url.ts';
import { attachMdns } from '../src/discovery/attach.ts';
import { MdnsDiscovery } from '../src/discovery/mdns.ts';
import { PkarrLookup } from '../src/discovery/lookup.ts';
import { encodeInfoDns, pkarrTimestampNow, signPacket } from '../src/discovery/pkarr.ts';
import { publishPacket } from '../src/discovery/pkarr-client.ts';
import { startRelayServer } from '../relay-server/src/index.ts';

const BENCH = 'discovery';
const quick = process.env.SDNET_BENCH_QUICK === '1';
const runs = Math.max(1, Math.round(Number(process.env.SDNET_BENCH_RUNS ?? '') || (quick ? 5 : 15)));

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const p90 = (v: readonly number[]): number => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * 0.9))]!;
const round = (n: number): number => Math.round(n * 100) / 100;

async function upToDiscovered(): Promise<void> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const listener = await MdnsDiscovery.start({ id: SecretKey.generate().public(), ports: () => ({}), port });
  const times: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const ep = await Endpoint.bind({ bindAddr: '0.0.0.0:0', pkarr: false });
      const heard = new Promise<void>((resolve) => {
        const off = listener.on('peer', (p) => {
          if (p.id.equals(ep.id)) {
            off();
            resolve();
          }
        });
      });
      const mdns = await attachMdns(ep, { port });
      if (mdns === undefined) throw new Error('mDNS could not start');
      await Promise.race([heard, new Promise((_, reject) => setTimeout(() => reject(new Error('not heard within 30 s')), 30_000))]);
      times.push(performance.now() - t0);
      await ep.close();
    }
  } finally {
    listener.close();
  }
  console.log(JSON.stringify({ bench: BENCH, name: 'up→discovered (mDNS, this host)', runs, medianMs: round(median(times)), p90Ms: round(p90(times)), goalMs: 1000, withinGoal: median(times) <= 1000 }));
}

function pingOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/ping', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
}

async function resolveLatency(): Promise<void> {
  const relay = await startRelayServer({ host: '127.0.0.1', port: 0, rateLimit: false, pkarr: { getsPerSecond: 0, putsPerSecond: 0 }, limits: { acceptRatePerIp: 0, maxConnectionsPerIp: 0 } });
  try {
    const base = `http://127.0.0.1:${relay.port}/pkarr`;
    const key = SecretKey.generate();
    await publishPacket(base, key.public(), signPacket(key, encodeInfoDns({ id: key.public(), relayUrls: [RelayUrl.parse(`http://127.0.0.1:${relay.port}`)], directAddresses: [] }), pkarrTimestampNow()));
    const lookup = new PkarrLookup({ relays: [base] });
    // Warm both paths once.
    await pingOnce(relay.port);
    await lookup.resolve(key.public(), new AbortController().signal);
    const http1: number[] = [];
    const res: number[] = [];
    for (let i = 0; i < runs * 2; i++) {
      let t = performance.now();
      await pingOnce(relay.port);
      http1.push(performance.now() - t);
      t = performance.now();
      const addr = await lookup.resolve(key.public(), new AbortController().signal);
      res.push(performance.now() - t);
      if (addr === undefined) throw new Error('not resolved');
    }
    const ratio = median(res) / median(http1);
    console.log(JSON.stringify({ bench: BENCH, name: 'pkarr resolve vs one HTTP round trip (sdnet-relay, loopback)', runs: runs * 2, resolveMedianMs: round(median(res)), resolveP90Ms: round(p90(res)), httpRoundTripMedianMs: round(median(http1)), ratio: round(ratio), goalRatio: 2, withinGoal: ratio <= 2 }));
  } finally {
    await relay.close({ graceful: false });
  }
}

await upToDiscovered();
await resolveLatency();
process.exit(0);
