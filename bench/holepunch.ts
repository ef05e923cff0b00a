/**
 * Hole-punching benchmark (issue "bench/holepunch") in network namespaces: for each NAT pair,
 * TS ↔ TS and TS ↔ iroh in both roles, the time from a relay-only dial to the connection's first
 * validated direct path, next to a plain UDP dial with no NAT in the same run (the anchor); then bulk throughput on a
 * multipath connection after its move to the direct path, next to a single-path connection
 * (dialled straight to the server's UDP address with multipath off) between the same hosts.
 * JSON lines on stdout.
 *
 * Topology (test/helpers/netns.ts `NatLab`, shared/docs/holepunch.md §5.1): `sdnet-relay`
 * (HTTP, QAD on UDP 7842, rate limit off) at 203.0.113.10 on the public bridge; sites with
 * routers of NAT profile none, cone, home or strict, one host behind each. A server endpoint
 * runs in four sites; each measured pair is a client process in another site dialling one of
 * them with its id and the relay URL only. Every dial comes from a fresh client endpoint (a
 * new UDP socket, hence a new NAT mapping; one process per pair, one unmeasured warm-up dial
 * first) that is already online and knows its public address, as an application's would be.
 * Pairs run one after another. Bulk runs come in rounds of three: single path, single path from
 * an endpoint that is online like the multipath client (relay + QAD connection: it separates
 * what multipath costs from what a busier endpoint costs), multipath; the order rotates each
 * round so that no mode always runs on the warmer machine. The ratio reported is the median over
 * rounds of the round's multipath/single ratio, which cancels the drift of a shared 2-core
 * machine between rounds (the ratio of the two medians is printed too). Everything (relay, server, client,
 * NAT) shares the 2 cores.
 *
 * Needs root (network namespaces, nftables): otherwise prints one `skipped` line and exits 0.
 *
 * Environment: SDNET_BENCH_RUNS [3] (bulk rounds), SDNET_BENCH_HOLEPUNCH_MB [64],
 * SDNET_BENCH_HOLEPUNCH_CONNECTS [5], SDNET_BENCH_HOLEPUNCH_PARTS [dials,iroh,bulk] (which
 * parts run), SDNET_BENCH_QUICK=1 (1 run, 16 MiB, 3 dials, a 5 s wait on the pair that stays relayed).
 */
import { fileURLToPath } from 'node:url';
import { JsonLines, NatLab, netnsUnavailableReason, type NatProfile } from '../test/helpers/netns.ts';

const BENCH = 'holepunch';
const root = fileURLToPath(new URL('..', import.meta.url));
const CHILD = `${root}bench/children/holepunch-peer.ts`;
const IROH_CHILD = `${root}bench/children/holepunch-iroh.ts`;
const RELAY_BIN = `${root}bin/sdnet-relay.js`;
const QAD_PORT = 7842;
const quick = process.env.SDNET_BENCH_QUICK === '1';
const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? '');
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const MiB = 1 << 20;
const config = {
  runs: Math.round(num('SDNET_BENCH_RUNS', quick ? 1 : 3)),
  bytes: Math.round(num('SDNET_BENCH_HOLEPUNCH_MB', quick ? 16 : 64) * MiB),
  chunk: 65536,
  connects: Math.round(num('SDNET_BENCH_HOLEPUNCH_CONNECTS', quick ? 3 : 5)),
  warmup: 1,
  /** How long a dial may take to reach a direct path (iroh's and the netns test's 15 s). */
  windowMs: 15_000,
  /** The pair that cannot punch (EDM × APDF): one dial, watched this long. */
  relayedWindowMs: quick ? 5_000 : 15_000,
  parts: new Set((process.env.SDNET_BENCH_HOLEPUNCH_PARTS ?? 'dials,iroh,bulk').split(',').map((x) => x.trim())),
};

type Line = Record<string, unknown>;
const print = (name: string, fields: Line): void => console.log(JSON.stringify({ bench: BENCH, name, ...fields }));
const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 3): number => Number(x.toFixed(d));

const reason = netnsUnavailableReason();
if (reason !== undefined) {
  print('skipped', { skipped: reason });
  process.exit(0);
}

/** Sites: two of each punchable profile (client and server side) and one strict. */
const SITES: { name: string; nat: NatProfile }[] = [
  { name: 'n1', nat: 'none' },
  { name: 'n2', nat: 'none' },
  { name: 'c1', nat: 'cone' },
  { name: 'c2', nat: 'cone' },
  { name: 'h1', nat: 'home' },
  { name: 'h2', nat: 'home' },
  { name: 's2', nat: 'strict' },
];
const SERVERS = ['n2', 'c2', 'h2', 's2'];
/** client site → server site; `direct: false` is EDM × APDF, which stays on the relay. */
const PAIRS: { client: string; server: string; direct: boolean }[] = [
  { client: 'n1', server: 'n2', direct: true },
  { client: 'c1', server: 'c2', direct: true },
  { client: 'h1', server: 'h2', direct: true },
  { client: 'c1', server: 's2', direct: true },
  { client: 's2', server: 'c2', direct: true },
  { client: 'h1', server: 's2', direct: false },
];

let failed = false;
async function measure<T>(name: string, body: () => Promise<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (err) {
    failed = true;
    print(name, { error: err instanceof Error ? err.message.split('\n')[0]! : String(err) });
    return undefined;
  }
}

const lab = await NatLab.create(SITES);
const nat = (site: string): NatProfile => lab.sites[site]!.nat;
const pairName = (p: { client: string; server: string }): string => `${nat(p.client)}×${nat(p.server)}`;

/** Run a child (`script`: the TS peer unless given) in `site` to its `result` line (or its `error`), then make sure it is gone. */
async function runChild(site: string, args: string[], timeoutMs: number, script = CHILD): Promise<Line> {
  const proc = lab.spawn(site, [process.execPath, script, ...args]);
  const out = new JsonLines(proc);
  try {
    const line = await out.wait((o) => 'result' in o || 'error' in o, timeoutMs, `${args[0]} in ${site}`);
    if ('error' in line) throw new Error(`${args[0]} in ${site}: ${String(line.error)}`);
    return line;
  } finally {
    proc.kill('SIGKILL');
  }
}

try {
  const relay = new JsonLines(
    lab.spawn('public', [process.execPath, RELAY_BIN, '--host', lab.publicAddr, '--port', '3340', '--qad-port', String(QAD_PORT), '--no-metrics', '--rate-limit', '0', '--accept-rate-per-ip', '0', '--log-level', 'warn']),
  );
  const url = (await relay.waitText(/^https?:\/\/\S+/, 30_000, 'the relay URL')).trim();

  const servers: Record<string, { id: string; direct: string[]; out: JsonLines }> = {};
  for (const site of SERVERS) {
    const out = new JsonLines(lab.spawn(site, [process.execPath, CHILD, 'serve', url, String(QAD_PORT)]));
    const ready = await out.wait<{ id: string; direct: string[] }>((o) => o.ready === true || 'error' in o, 60_000, `server in ${site} ready`);
    if (typeof ready.id !== 'string') throw new Error(`server in ${site}: ${JSON.stringify(ready)}`);
    servers[site] = { id: ready.id, direct: ready.direct, out };
  }
  /** The server's address as a peer in another site reaches it: its own (no NAT) or its router's mapping. */
  const reachable = (site: string): string => {
    const s = lab.sites[site]!;
    const host = s.nat === 'none' ? s.addr : s.wan;
    const a = servers[site]!.direct.find((d) => d.startsWith(`${host}:`));
    if (a === undefined) throw new Error(`server in ${site} has no address on ${host} (${servers[site]!.direct.join(', ')})`);
    return a;
  };

  // The anchor: the same server and client hosts as none×none, a plain UDP dial, no relay.
  const plain = config.parts.has('dials') ? await measure('plain UDP dial', () => runChild('n1', ['plain', reachable('n2'), servers.n2!.id, String(config.connects), String(config.warmup)], 120_000)) : undefined;
  const plainMs = plain?.connectMs as number | undefined;
  if (plain) print('anchor plain UDP dial, no NAT (none×none, to the address)', { what: 'connect() start to resolved: the handshake on the one direct path', connectMs: plain.connectMs, connectMsMin: plain.connectMsMin, connectMsMax: plain.connectMsMax, n: plain.n, runsMs: plain.runsMs });

  const punched: Record<string, number | null> = {};
  for (const p of config.parts.has('dials') ? PAIRS : []) {
    const name = `${pairName(p)} relay-only dial → direct`;
    const n = p.direct ? config.connects : 1;
    const windowMs = p.direct ? config.windowMs : config.relayedWindowMs;
    const r = await measure(name, () => runChild(p.client, ['punch', url, String(QAD_PORT), servers[p.server]!.id, String(n), String(p.direct ? config.warmup : 0), String(windowMs)], 60_000 + (n + config.warmup) * (windowMs + 20_000)));
    if (r === undefined) continue;
    const fromDial = r.fromDialMs as number | null;
    punched[pairName(p)] = fromDial;
    print(name, {
      client: nat(p.client),
      server: nat(p.server),
      ...(p.direct ? {} : { expected: 'relayed (EDM × APDF)' }),
      direct: `${String(r.direct)}/${n}`,
      ...(p.direct ? {} : { stayedRelayed: r.direct === 0 }),
      fromDialMs: fromDial,
      directMs: r.directMs,
      connectMs: r.connectMs,
      fromDialMsMin: r.fromDialMsMin,
      fromDialMsMax: r.fromDialMsMax,
      ...(p.direct ? {} : { watchedMs: windowMs }),
      fromDialRunsMs: r.fromDialRunsMs,
      ...(fromDial !== null && plainMs ? { ratioToPlainDial: round(fromDial / plainMs, 2) } : {}),
    });
  }

  // TS ↔ iroh: iroh endpoints next to the TS servers; relay-only dials in both roles, the same
  // way (fresh endpoints already online, one warm-up dial). iroh knows only its local addresses
  // (no QAD against a test relay), so the cells that stay relayed in the netns test (iroh behind
  // cone or home × sdnet behind home) are left out.
  if (config.parts.has('iroh')) {
    const irohServers: Record<string, string> = {};
    for (const site of ['n2', 'c2']) {
      const out = new JsonLines(lab.spawn(site, [process.execPath, IROH_CHILD, 'serve', url]));
      const ready = await out.wait<{ id: string }>((o) => o.ready === true || 'error' in o, 60_000, `iroh server in ${site} ready`);
      if (typeof ready.id !== 'string') throw new Error(`iroh server in ${site}: ${JSON.stringify(ready)}`);
      irohServers[site] = ready.id;
    }
    const IROH_PAIRS: { dialler: 'sdnet' | 'iroh'; client: string; server: string }[] = [
      { dialler: 'sdnet', client: 'n1', server: 'n2' },
      { dialler: 'sdnet', client: 'c1', server: 'c2' },
      { dialler: 'sdnet', client: 'h1', server: 'n2' },
      { dialler: 'iroh', client: 'n1', server: 'n2' },
      { dialler: 'iroh', client: 'c1', server: 'c2' },
      { dialler: 'iroh', client: 'h1', server: 'c2' },
    ];
    for (const p of IROH_PAIRS) {
      const who = p.dialler === 'sdnet' ? 'sdnet → iroh' : 'iroh → sdnet';
      const name = `${who} ${pairName(p)} relay-only dial → direct`;
      const n = config.connects;
      const timeout = 60_000 + (n + config.warmup) * (config.windowMs + 20_000);
      const r = await measure(name, () =>
        p.dialler === 'sdnet'
          ? runChild(p.client, ['punch', url, String(QAD_PORT), irohServers[p.server]!, String(n), String(config.warmup), String(config.windowMs)], timeout)
          : runChild(p.client, ['punch', url, servers[p.server]!.id, String(n), String(config.warmup), String(config.windowMs)], timeout, IROH_CHILD),
      );
      if (r === undefined) continue;
      const fromDial = r.fromDialMs as number | null;
      punched[`${who} ${pairName(p)}`] = fromDial;
      print(name, {
        dialler: p.dialler,
        client: nat(p.client),
        server: nat(p.server),
        direct: `${String(r.direct)}/${n}`,
        fromDialMs: fromDial,
        connectMs: r.connectMs,
        fromDialMsMin: r.fromDialMsMin,
        fromDialMsMax: r.fromDialMsMax,
        fromDialRunsMs: r.fromDialRunsMs,
        ...(fromDial !== null && plainMs ? { ratioToPlainDial: round(fromDial / plainMs, 2) } : {}),
      });
    }
  }

  // Bulk: cone×cone, multipath after the switch vs single path, in rounds.
  const bulkPair = { client: 'c1', server: 'c2' };
  const label = `${config.bytes / MiB}MiB`;
  type Mode = 'multipath' | 'single' | 'single-online';
  const MODES: readonly Mode[] = ['single', 'single-online', 'multipath'];
  let seq = 0;
  const bulk = async (mode: Mode): Promise<Line> => {
    const s = servers[bulkPair.server]!;
    const mine = seq++;
    const [sent, got] = await Promise.all([
      runChild(bulkPair.client, ['bulk', mode, url, String(QAD_PORT), s.id, reachable(bulkPair.server), String(config.bytes), String(config.chunk)], 240_000),
      s.out.wait((o) => o.received === true && o.seq === mine, 240_000, `server count ${mine}`),
    ]);
    if (mode === 'multipath' && (sent.relayed !== false || sent.multipath !== true)) throw new Error(`multipath run: relayed ${String(sent.relayed)}, multipath ${String(sent.multipath)}`);
    if (mode !== 'multipath' && (sent.relayed !== false || sent.multipath !== false)) throw new Error(`single-path run: relayed ${String(sent.relayed)}, multipath ${String(sent.multipath)}`);
    return { ...sent, receiverCpuPct: got.processCpuPct, receiverMBps: got.MBps };
  };
  const runs: Record<Mode, Line[]> = { multipath: [], single: [], 'single-online': [] };
  /** Per round, multipath MB/s over single-path MB/s, and over the online single path (rounds where both ran). */
  const roundRatios: number[] = [];
  const onlineRoundRatios: number[] = [];
  for (let i = 0; i < (config.parts.has('bulk') ? config.runs : 0); i++) {
    // Each round rotates the order, so that no mode always runs first (or last).
    const order = MODES.map((_, k) => MODES[(k + i) % MODES.length]!);
    const got: Partial<Record<Mode, number>> = {};
    for (const mode of order) {
      const r = await measure(`${mode} bulk`, () => bulk(mode));
      if (r) {
        runs[mode].push(r);
        got[mode] = r.MBps as number;
      }
    }
    if (got.multipath !== undefined && got.single) roundRatios.push(round(got.multipath / got.single));
    if (got.multipath !== undefined && got['single-online']) onlineRoundRatios.push(round(got.multipath / got['single-online']));
  }
  const mbps = (mode: Mode): number | undefined => (runs[mode].length ? median(runs[mode].map((r) => r.MBps as number)) : undefined);
  const med = (mode: Mode, key: string): number => median(runs[mode].map((r) => r[key] as number));
  const single = mbps('single');
  const online = mbps('single-online');
  const multi = mbps('multipath');
  const anchor = (mode: Mode): Line => ({ MBps: mbps(mode), senderCpuPct: med(mode, 'processCpuPct'), receiverCpuPct: med(mode, 'receiverCpuPct'), lostPackets: med(mode, 'lostPackets'), congestionEvents: med(mode, 'congestionEvents'), mtu: runs[mode][0]?.mtu, runsMBps: runs[mode].map((r) => r.MBps), path: runs[mode][0]?.path });
  if (single !== undefined) print(`anchor single-path bulk ${label} (${pairName(bulkPair)}, dialled to the address, multipath off)`, anchor('single'));
  if (online !== undefined) print(`anchor single-path bulk ${label} from an online endpoint (${pairName(bulkPair)}, relay + QAD as the multipath client, dialled to the address, multipath off)`, anchor('single-online'));
  if (multi !== undefined) {
    print(`multipath bulk ${label} after the switch (${pairName(bulkPair)}, dialled relay-only)`, {
      ...anchor('multipath'),
      switchMs: med('multipath', 'switchMs'),
      relayBytesDuring: Math.max(...runs.multipath.map((r) => r.relayBytesDuring as number)),
      pathCount: runs.multipath[0]?.pathCount,
    });
  }

  const ratio = roundRatios.length > 0 ? round(median(roundRatios)) : null;
  const ratioOfMedians = single && multi ? round(multi / single) : null;
  const summary: Line = {
    plainDialMs: plainMs ?? null,
    ...Object.fromEntries(Object.entries(punched).map(([k, v]) => [`${k} fromDialMs`, v])),
    multipathOverSingleBulk: ratio,
    roundRatios,
    ratioOfMedians,
    multipathOverOnlineSingleBulk: onlineRoundRatios.length > 0 ? round(median(onlineRoundRatios)) : null,
    bulkGoal: 0.95,
    withinBulkGoal: ratio !== null && ratio >= 0.95,
  };
  print('summary', summary);
} catch (err) {
  failed = true;
  print('run', { error: err instanceof Error ? err.message.split('\n')[0]! : String(err) });
} finally {
  await lab.destroy();
}
process.exitCode = failed ? 1 : 0;
