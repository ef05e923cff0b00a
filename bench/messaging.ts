/**
 * Messaging benchmark (issue "Device layer"): request/response round trips per second and
 * p50/p99 latency over one `sdnet/messaging/1` connection between two device services in
 * two processes, direct on loopback and through the relay (relay-only: the answering side
 * has no UDP socket), next to a bare QUIC stream echo in the same run (a new bidirectional
 * stream per round trip, the same bytes, the same processes and paths). Goal: messaging ≥
 * 0.8 × the bare echo's round trips per second.
 *
 * Sequential round trips (one outstanding) measure latency; 16 outstanding at once measure
 * what one connection carries. Messaging and echo alternate run by run so both see the same
 * noise; medians of the runs are reported. JSON lines on stdout.
 *
 * Environment: SDNET_BENCH_RUNS [3], SDNET_BENCH_MSG_N [2000] round trips per run,
 * SDNET_BENCH_QUICK=1 (small values).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Endpoint, EndpointAddr, EndpointTicket, type Connection } from '../src/index.ts';
import { encodeFrame, encodeMessage } from '../src/protocols/index.ts';
import { Core, DeviceRegistry, NetworkIdentity } from '../src/service/index.ts';

const BENCH = 'messaging';
const PEER = fileURLToPath(new URL('children/messaging-peer.ts', import.meta.url));
const RELAY = fileURLToPath(new URL('children/paths-ts.ts', import.meta.url));
const BARE_ALPN = 'bench/echo/1';
const quick = process.env.SDNET_BENCH_QUICK === '1';
const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? '');
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const config = { runs: Math.round(num('SDNET_BENCH_RUNS', quick ? 1 : 3)), n: Math.round(num('SDNET_BENCH_MSG_N', quick ? 300 : 2000)), concurrency: 16 };

type Line = Record<string, unknown>;
const print = (name: string, fields: Line): void => console.log(JSON.stringify({ bench: BENCH, name, ...fields }));
const round = (x: number, d = 3): number => Number(x.toFixed(d));
const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pct = (v: readonly number[], p: number): number => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function child(script: string, args: string[]): { ready: Promise<Line>; kill: () => void } {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const ready = new Promise<Line>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (t) => {
      try {
        const l = JSON.parse(t) as Line;
        if ('error' in l) reject(new Error(String(l.error)));
        else if (l.ready) resolve(l);
      } catch {
        // not ours
      }
    });
    proc.on('exit', (code) => reject(new Error(`${script} exited ${code}: ${stderr}`)));
  });
  ready.catch(() => undefined);
  return { ready, kill: () => proc.kill('SIGTERM') };
}

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** The payload of every round trip, and the same number of bytes for the bare echo. */
const payload = { i: 0, pad: 'x'.repeat(64) };
const bareBytes = encodeFrame(encodeMessage({ Request: { request_id: 'xxxxxxxx-1', payload } }));

/** `n` round trips, `concurrency` outstanding at a time; latencies in ms. */
async function drive(n: number, concurrency: number, once: (i: number) => Promise<void>): Promise<{ rps: number; lat: number[] }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const s = performance.now();
        await once(i);
        lat.push(performance.now() - s);
      }
    }),
  );
  return { rps: n / ((performance.now() - t0) / 1000), lat };
}

async function bareEcho(conn: Connection): Promise<void> {
  const { readable, writable } = await conn.openBi();
  const w = writable.getWriter();
  w.write(bareBytes).catch(() => undefined);
  w.close().catch(() => undefined);
  let got = 0;
  for await (const c of readable) got += c.length;
  if (got !== bareBytes.length) throw new Error(`echo returned ${got} of ${bareBytes.length} bytes`);
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'sdnet-bench-messaging-'));
  const relay = child(RELAY, ['relay']);
  const servers: { kill: () => void }[] = [];
  try {
    const relayUrl = String((await relay.ready).url);
    // The client device, paired through the registry with one answering device per mode.
    const clientDir = join(root, 'client');
    const { identity: client } = await NetworkIdentity.init(clientDir, { name: 'client' });
    const targets: Record<'direct' | 'relay', { id: string; bare: EndpointAddr }> = {} as never;
    for (const mode of ['direct', 'relay'] as const) {
      const dir = join(root, mode);
      const { identity: server } = await NetworkIdentity.init(dir, { name: mode });
      const port = await freePort();
      const linkKey = crypto.getRandomValues(new Uint8Array(32));
      const theirs = await DeviceRegistry.open(dir);
      theirs.pair({ id: client.endpointId, info: client.info, linkKey });
      await theirs.close();
      const mine = await DeviceRegistry.open(clientDir);
      const addr = mode === 'direct' ? EndpointAddr.from({ id: server.endpointId, directAddresses: [`127.0.0.1:${port}`] }) : EndpointAddr.from({ id: server.endpointId, relayUrls: [relayUrl] });
      mine.pair({ id: server.endpointId, info: server.info, linkKey, addr });
      await mine.close();
      const s = child(PEER, [mode, relayUrl, dir, String(port)]);
      servers.push(s);
      const ready = await s.ready;
      targets[mode] = { id: String(ready.id), bare: EndpointTicket.parse(String(ready.bareTicket)).addr };
    }
    const core = await Core.init({ dataDir: clientDir, relays: [relayUrl], bind: ['127.0.0.1:0'] });
    const summary: Line = {};
    try {
      for (const mode of ['direct', 'relay'] as const) {
        const t = targets[mode];
        const bareEp = await Endpoint.bind({ bindAddr: mode === 'relay' ? [] : ['127.0.0.1:0'], ...(mode === 'relay' ? { relays: [relayUrl] } : {}) });
        const bareConn = await bareEp.connect(t.bare, BARE_ALPN);
        // Warm up both, and check the paths are what they claim.
        for (let i = 0; i < 200; i++) {
          await core.networking.request(t.id, payload);
          await bareEcho(bareConn);
        }
        const msgConn = core.networking.connections(t.id).find((c) => c.alpn === 'sdnet/messaging/1')!.connection;
        if (msgConn.stats().relayed !== (mode === 'relay') || bareConn.stats().relayed !== (mode === 'relay')) throw new Error(`the ${mode} run is not on the ${mode} path`);
        for (const c of [1, config.concurrency]) {
          const msg: { rps: number; lat: number[] }[] = [];
          const bare: { rps: number; lat: number[] }[] = [];
          for (let r = 0; r < config.runs; r++) {
            msg.push(await drive(config.n, c, async (i) => void (await core.networking.request(t.id, { ...payload, i }))));
            bare.push(await drive(config.n, c, () => bareEcho(bareConn)));
          }
          const stat = (runs: { rps: number; lat: number[] }[]) => {
            const lat = runs.flatMap((x) => x.lat);
            return { rps: Math.round(median(runs.map((x) => x.rps))), p50Ms: round(pct(lat, 0.5)), p99Ms: round(pct(lat, 0.99)), runsRps: runs.map((x) => Math.round(x.rps)) };
          };
          const m = stat(msg);
          const b = stat(bare);
          const label = `${mode} ${c === 1 ? 'sequential' : `${c} outstanding`}`;
          print(`messaging request/response ${label}`, { ...m, n: config.n, runs: config.runs });
          print(`bare QUIC stream echo ${label}`, { ...b, n: config.n, runs: config.runs, bytes: bareBytes.length });
          summary[`${mode}${c === 1 ? 'Sequential' : 'Concurrent'}RpsRatio`] = round(m.rps / b.rps, 2);
        }
        await bareEp.close({ graceMs: 50 });
      }
    } finally {
      await core.shutdown();
    }
    print('summary', { ...summary, goal: 'messaging ≥ 0.8 × bare echo round trips per second', note: 'two processes (client, answering device) plus the relay process on 2 cores' });
  } finally {
    for (const s of servers) s.kill();
    relay.kill();
    await rm(root, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.log(JSON.stringify({ bench: BENCH, error: String(err) }));
    process.exit(1);
  },
);
