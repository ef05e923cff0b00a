/**
 * Endpoint paths for real (the "Endpoint paths" issue's acceptance items), in network
 * namespaces (shared/docs/reliability.md §6): the deployable `sdnet-relay` binary in one
 * namespace and each sdnet peer (`test/helpers/paths-peer.ts`, or `sdnet pipe`) in its own,
 * all on one switch whose nftables bridge rules decide what UDP gets through. TCP (the relay)
 * always passes.
 *
 * 1. Relay only: every UDP packet between the peers is dropped. 64 MiB client → server (and
 *    1 MiB back), hash-verified; the relay's metrics show it carried all of it and the drop
 *    counter shows the peers did try direct UDP.
 * 2. Fallback: UDP passes, so the connection runs direct; at a checkpoint 16 MiB into a
 *    64 MiB transfer a rule starts dropping all UDP, and the rest must go through the relay:
 *    the transfer completes (hash), the relay's byte counter grew by at least what was left,
 *    the connection ended on the relay.
 * 3. Relay restart: UDP dropped, so everything goes through the relay; at a checkpoint the
 *    relay process is stopped (SIGTERM: graceful, clients are told Restarting; SIGKILL: the
 *    sockets just die) and started again on the same address and port; the transfer
 *    completes on the same connection (hash), and the new relay process carried the rest.
 * 4. `sdnet pipe listen|connect --relay URL` in two namespaces with UDP dropped: 4 MiB each
 *    way, hash-verified at both ends, through the relay with its default rate limit.
 *
 * The checkpoints are pauses of the sending peer (it stops writing after N bytes and waits
 * for `go` on its stdin), so the network changes at a known point of the transfer; the bytes
 * still unacknowledged at that moment meet the change in flight. Bulk cases run the relay
 * with `--rate-limit 0` (its default 2 MiB/s per client would make them slow, not different).
 *
 * Nothing is timed: the timeouts only bound a stall. Randomness: payload bytes and secret
 * keys derive from the printed seed (`SDNET_SEED=<seed>` re-runs with the same ones); the
 * QUIC/TLS stacks' own randomness and the kernel's scheduling cannot be seeded.
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../relay-server/src/index.ts';
import { JsonLines, NetnsLab, netnsUnavailableReason } from '../helpers/netns.ts';
import { payloadBytes, payloadSha256, type PathsPeerConfig } from '../helpers/paths-peer.ts';
import { testSeed } from '../helpers/seed.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] paths (netns + nftables): ${reason}`);

const root = fileURLToPath(new URL('../..', import.meta.url));
const RELAY_BIN = `${root}bin/sdnet-relay.js`;
const SDNET_BIN = `${root}bin/sdnet.js`;
const PEER = `${root}test/helpers/paths-peer.ts`;
const MiB = 1024 * 1024;
const RELAY_PORT = 3340;
const METRICS_PORT = 9090;
/** Per-test budgets: the waits inside only bound stalls. */
const TEST_TIMEOUT_MS = 55_000;
const CHECKPOINT_TIMEOUT_MS = 15_000;
const TRANSFER_TIMEOUT_MS = 25_000;

const labs: NetnsLab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) {
    await lab.destroy(); // SIGKILLs relays and peers, deletes the namespaces
    expect(NetnsLab.namespacesOf(lab.id)).toEqual([]);
  }
});

async function newLab(): Promise<NetnsLab> {
  const lab = await NetnsLab.create(['relay', 'a', 'b']);
  labs.push(lab);
  return lab;
}

type Event = Record<string, unknown> & { event: string };
interface PeerStats {
  relayed: boolean;
  pathChanges: number;
  lostPackets: number;
  path: string;
  pathKind?: string;
  ep: { udpSent: number; relaySent: number; relayReceived: number; udpSendErrors: number };
  relays: Array<{ url: string; home: boolean; state: string; stats: { connections: number; disconnects: number; [k: string]: unknown } }>;
  [k: string]: unknown;
}

interface Relay {
  proc: ChildProcess;
  out: JsonLines;
  url: string;
}

/** Start `sdnet-relay` in the relay namespace on the fixed port; resolves once it prints its URL. */
async function startRelay(lab: NetnsLab, extra: string[] = ['--rate-limit', '0']): Promise<Relay> {
  const host = lab.hosts.relay!.addr;
  const proc = lab.spawn('relay', [process.execPath, RELAY_BIN, '--host', host, '--port', String(RELAY_PORT), '--metrics-host', host, '--metrics-port', String(METRICS_PORT), '--log-level', 'info', ...extra]);
  const out = new JsonLines(proc);
  const url = await out.waitText(/^http:\/\//, 15_000, 'the relay URL');
  expect(url).toBe(`http://${host}:${RELAY_PORT}/`);
  return { proc, out, url };
}

/** The relay's Prometheus metrics, fetched from inside its namespace. */
async function relayMetrics(lab: NetnsLab): Promise<Map<string, number>> {
  const url = `http://${lab.hosts.relay!.addr}:${METRICS_PORT}/metrics`;
  const r = await lab.exec('relay', [process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async r => process.stdout.write(await r.text()), e => { console.error(String(e)); process.exit(1) })`]);
  if (r.code !== 0) throw new Error(`fetching ${url} failed: ${r.stderr}`);
  return parsePrometheusText(r.stdout);
}

const relayedBytes = (m: Map<string, number>): number => m.get('relay_bytes_relayed_total') ?? 0;

/** The switch's counters, by rule comment. */
async function switchCounters(lab: NetnsLab): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await lab.nftList('switch')).matchAll(/counter packets (\d+) bytes \d+.*comment "([^"]+)"/g)) out.set(m[2]!, Number(m[1]));
  return out;
}

interface Peer {
  proc: ChildProcess;
  out: JsonLines;
}

function startPeer(lab: NetnsLab, host: string, role: 'serve' | 'dial', cfg: PathsPeerConfig): Peer {
  const proc = lab.spawn(host, [process.execPath, PEER, role, JSON.stringify(cfg)]);
  return { proc, out: new JsonLines(proc) };
}

/** Ask a peer for its current stats (a `stats` line on stdin). */
async function peerStats(p: Peer): Promise<PeerStats> {
  const before = p.out.objects.length;
  p.proc.stdin!.write('stats\n');
  const got = await p.out.wait<Event & { stats: PeerStats }>((o) => o.event === 'stats' && p.out.objects.indexOf(o) >= before, 5_000, 'stats');
  return got.stats;
}

interface Exchange {
  seed: string;
  server: Peer;
  client: Peer;
  /** Throws with everything collected so far (peers' output, relay log, switch rules). */
  explain: (err: unknown) => Promise<never>;
}

/**
 * Start the server in `a` (online at the relay), then the client in `b` dialling its ticket
 * (relay URL + direct address).
 */
async function startExchange(lab: NetnsLab, label: string, seed: string, relays: () => Relay[], opts: { c2s: number; s2c: number; pause?: PathsPeerConfig['pause'] }): Promise<Exchange> {
  const relayUrl = relays()[0]!.url;
  const base = { seed, relays: [relayUrl], c2s: opts.c2s, s2c: opts.s2c, ...(opts.pause ? { pause: opts.pause } : {}) };
  const server = startPeer(lab, 'a', 'serve', { ...base, keySeed: `${seed}/server`, bind: [`${lab.hosts.a!.addr}:0`] });
  const peers: { client?: Peer } = {};
  const explain = async (err: unknown): Promise<never> => {
    const nft = await lab.nftList('switch').catch((e: unknown) => String(e));
    const relayLogs = relays()
      .map((r, i) => `relay #${i + 1} stderr: ${r.out.stderr}`)
      .join('\n');
    throw new Error(
      `${label} (SDNET_SEED=${seed}): ${(err as Error).message}\n` +
        `client stdout:\n${peers.client?.out.lines.join('\n')}\nclient stderr: ${peers.client?.out.stderr}\n` +
        `server stdout:\n${server.out.lines.join('\n')}\nserver stderr: ${server.out.stderr}\n${relayLogs}\nswitch: ${nft}`,
      { cause: err },
    );
  };
  const ready = await server.out.wait<Event & { ticket: string; home: string; addr: { relayUrls: string[]; directAddresses: string[] } }>((o) => o.event === 'ready' || o.event === 'error', 20_000, 'the server online').catch(explain);
  if (ready.event !== 'ready') await explain(new Error(`server failed: ${JSON.stringify(ready)}`));
  expect(ready.home).toBe(relayUrl);
  // The ticket names the relay and the direct address on the switch.
  expect(ready.addr.relayUrls).toEqual([relayUrl]);
  expect(ready.addr.directAddresses.map((a) => a.replace(/:\d+$/, ''))).toEqual([lab.hosts.a!.addr]);
  const client = startPeer(lab, 'b', 'dial', { ...base, keySeed: `${seed}/client`, bind: [`${lab.hosts.b!.addr}:0`], ticket: ready.ticket });
  peers.client = client;
  return { seed, server, client, explain };
}

/** Poll the client's stats until `ok` (the sender is paused meanwhile). */
async function waitForStats(x: Exchange, ok: (s: PeerStats) => boolean, timeoutMs: number, what: string): Promise<PeerStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await peerStats(x.client).catch(x.explain);
    if (ok(s)) return s;
    if (Date.now() > deadline) return x.explain(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last client stats ${JSON.stringify(s)}`));
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Outcome {
  result: Event & { received: { bytes: number; sha256: string }; peerReceivedSha256: string; stats: PeerStats };
  received: Event & { bytes: number; sha256: string; extra: number; stats: PeerStats };
  serverStats: PeerStats;
  /** The client's current-path history (`path` lines). */
  clientPaths: Array<{ key: string; kind?: string; relayed: boolean; pathChanges: number }>;
}

/** Wait for both ends, check both hashes and the trailer. */
async function finishExchange(x: Exchange, c2s: number, s2c: number): Promise<Outcome> {
  const [result, received] = await Promise.all([
    x.client.out.wait<Outcome['result']>((o) => o.event === 'result' || o.event === 'error', TRANSFER_TIMEOUT_MS, 'the client result'),
    x.server.out.wait<Outcome['received']>((o) => o.event === 'received' || o.event === 'error', TRANSFER_TIMEOUT_MS, "the server's receipt"),
  ]).catch(x.explain);
  if (result.event === 'error' || received.event === 'error') await x.explain(new Error(`a peer failed: ${JSON.stringify(result)} ${JSON.stringify(received)}`));
  const serverStats = await peerStats(x.server).catch(x.explain);
  // Every byte arrived intact, each way: each receiver's own SHA-256 of what it read.
  const c2sHash = payloadSha256(x.seed, 'c2s', c2s);
  expect(received).toMatchObject({ bytes: c2s, sha256: c2sHash, extra: 0 });
  expect(result.received).toEqual({ bytes: s2c, sha256: payloadSha256(x.seed, 's2c', s2c) });
  // The server's hash came back after its data (the "echo").
  expect(result.peerReceivedSha256).toBe(c2sHash);
  const clientPaths = x.client.out.objects.filter((o) => o.event === 'path') as unknown as Outcome['clientPaths'];
  return { result, received, serverStats, clientPaths };
}

const summary = (s: PeerStats): Record<string, unknown> => ({
  relayed: s.relayed,
  pathChanges: s.pathChanges,
  lostPackets: s.lostPackets,
  path: s.pathKind,
  ep: s.ep,
  relays: s.relays.map((r) => ({ state: r.state, connections: r.stats.connections, disconnects: r.stats.disconnects })),
});

describe.skipIf(reason !== undefined)('endpoint paths in network namespaces: sdnet-relay + two sdnet peers (root)', () => {
  it(
    'relay only for real: all UDP between the peers dropped, 64 MiB (+1 MiB back) hash-verified through sdnet-relay',
    async () => {
      const seed = String(testSeed('paths relay-only'));
      const lab = await newLab();
      await lab.switchFilter('meta l4proto udp counter drop comment "udp-dropped"');
      const relays = [await startRelay(lab)];
      const c2s = 64 * MiB;
      const s2c = 1 * MiB;
      const x = await startExchange(lab, 'relay-only', seed, () => relays, { c2s, s2c });
      const o = await finishExchange(x, c2s, s2c);

      const metrics = await relayMetrics(lab);
      const dropped = (await switchCounters(lab)).get('udp-dropped') ?? 0;
      const client = o.result.stats;
      console.log(
        `[paths] relay-only SDNET_SEED=${seed}: relay_bytes_relayed_total=${relayedBytes(metrics)} (${(relayedBytes(metrics) / MiB).toFixed(1)} MiB), ` +
          `rate-limited=${metrics.get('relay_rate_limited_total')}, UDP dropped on the switch=${dropped}; client ${JSON.stringify(summary(client))}; server ${JSON.stringify(summary(o.serverStats))}; client paths ${JSON.stringify(o.clientPaths)}`,
      );
      // The relay carried everything (payload, both ways, plus QUIC overhead).
      expect(relayedBytes(metrics)).toBeGreaterThanOrEqual(c2s + s2c);
      // Both peers authenticated with it once (no reconnects needed).
      expect(metrics.get('relay_handshakes_total{mechanism="challenge"}')).toBe(2);
      // The peers did try direct UDP (the client dials every path; the server answers probes)
      // and nftables dropped it.
      expect(dropped).toBeGreaterThan(0);
      expect(client.ep.udpSent).toBeGreaterThan(0);
      // The connection ran on the relay all along, on both sides.
      expect(client.relayed).toBe(true);
      expect(o.serverStats.relayed).toBe(true);
      expect(o.clientPaths.every((p) => p.relayed)).toBe(true);
      expect(client.ep.relaySent).toBeGreaterThan(c2s / 1500);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'fallback: UDP dropped 16 MiB into a direct 64 MiB transfer; the rest goes through the relay, hash-verified',
    async () => {
      const seed = String(testSeed('paths fallback'));
      const lab = await newLab();
      // UDP passes for now; the counter shows how much went direct.
      await lab.switchFilter('meta l4proto udp counter comment "udp"');
      const relays = [await startRelay(lab)];
      const c2s = 64 * MiB;
      const s2c = 1 * MiB;
      const at = 16 * MiB;
      const x = await startExchange(lab, 'fallback', seed, () => relays, { c2s, s2c, pause: { dir: 'c2s', at } });

      const checkpoint = await x.client.out.wait<Event & { stats: PeerStats }>((o) => o.event === 'checkpoint' || o.event === 'error', CHECKPOINT_TIMEOUT_MS, 'the checkpoint').catch(x.explain);
      if (checkpoint.event !== 'checkpoint') await x.explain(new Error(`client failed: ${JSON.stringify(checkpoint)}`));
      // Early in the transfer the connection is direct. (It starts direct when the direct path
      // answers the first flight before the relay, as on this switch; were the relay first, an
      // upgrade would follow — the sender waits here for it, briefly.)
      const early = checkpoint.stats.relayed ? await waitForStats(x, (s) => !s.relayed, 10_000, 'the direct path') : checkpoint.stats;
      expect(early.relayed, JSON.stringify(early)).toBe(false);
      expect(early.pathKind).toBe('udp');
      const before = relayedBytes(await relayMetrics(lab));
      const udpBefore = (await switchCounters(lab)).get('udp') ?? 0;
      // Now no UDP gets through; the client goes on writing.
      await lab.addRule('switch', 'bridge', 'lab', 'filter_forward', 'meta l4proto udp counter drop comment "udp-dropped"');
      x.client.proc.stdin!.write('go\n');

      const o = await finishExchange(x, c2s, s2c);
      const after = relayedBytes(await relayMetrics(lab));
      const sw = await switchCounters(lab);
      const client = o.result.stats;
      console.log(
        `[paths] fallback SDNET_SEED=${seed}: relay bytes before the drop rule ${before} (${(before / MiB).toFixed(2)} MiB), after ${after} (+${((after - before) / MiB).toFixed(1)} MiB); ` +
          `switch: UDP before the rule ${udpBefore} packets, total ${sw.get('udp')}, dropped ${sw.get('udp-dropped')}; ` +
          `checkpoint at t=${String(checkpoint.t)} ms ${JSON.stringify(summary(early))}; client ${JSON.stringify(summary(client))}; server ${JSON.stringify(summary(o.serverStats))}; client paths ${JSON.stringify(o.clientPaths)}`,
      );
      // The first part went direct: thousands of UDP datagrams crossed the switch.
      expect(udpBefore).toBeGreaterThan(at / 1500 / 2);
      // Everything written after the checkpoint crossed after the rule: through the relay.
      expect(after - before).toBeGreaterThanOrEqual(c2s - at);
      expect(sw.get('udp-dropped')).toBeGreaterThan(0);
      // The client fell back to the relay and stayed there (the direct path stays dark).
      expect(client.relayed).toBe(true);
      expect(client.pathChanges).toBeGreaterThanOrEqual(1);
      expect(o.clientPaths.some((p) => !p.relayed)).toBe(true);
      expect(o.clientPaths.at(-1)?.relayed).toBe(true);
      // The server followed.
      expect(o.serverStats.relayed).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'upgrade (the converse of fallback): UDP dropped at first, so the connection starts on the relay; once UDP passes it moves direct and the rest of 32 MiB goes direct, hash-verified',
    async () => {
      const seed = String(testSeed('paths upgrade'));
      const lab = await newLab();
      await lab.switchFilter('meta l4proto udp counter comment "udp"');
      const drop = await lab.addRule('switch', 'bridge', 'lab', 'filter_forward', 'meta l4proto udp counter drop comment "udp-dropped"');
      const relays = [await startRelay(lab)];
      const c2s = 32 * MiB;
      const s2c = 1 * MiB;
      const at = 8 * MiB;
      const x = await startExchange(lab, 'upgrade', seed, () => relays, { c2s, s2c, pause: { dir: 'c2s', at } });

      const checkpoint = await x.client.out.wait<Event & { stats: PeerStats }>((o) => o.event === 'checkpoint' || o.event === 'error', CHECKPOINT_TIMEOUT_MS, 'the checkpoint').catch(x.explain);
      if (checkpoint.event !== 'checkpoint') await x.explain(new Error(`client failed: ${JSON.stringify(checkpoint)}`));
      expect(checkpoint.stats.relayed).toBe(true);
      // UDP passes from now on; the client's next probe of the direct address validates it.
      // (Probes back off after failures: 1 s, 2 s, 4 s, … so this may take a few seconds.)
      const droppedEarly = (await switchCounters(lab)).get('udp-dropped') ?? 0;
      await lab.deleteRule('switch', 'bridge', 'lab', 'filter_forward', drop);
      const direct = await waitForStats(x, (s) => !s.relayed, 15_000, 'the upgrade to the direct path');
      const before = relayedBytes(await relayMetrics(lab));
      const udpBefore = (await switchCounters(lab)).get('udp') ?? 0;
      x.client.proc.stdin!.write('go\n');

      const o = await finishExchange(x, c2s, s2c);
      const after = relayedBytes(await relayMetrics(lab));
      const sw = await switchCounters(lab);
      const client = o.result.stats;
      console.log(
        `[paths] upgrade SDNET_SEED=${seed}: relay bytes at the checkpoint ${(before / MiB).toFixed(1)} MiB, after +${((after - before) / MiB).toFixed(2)} MiB; ` +
          `switch: UDP ${udpBefore} → ${sw.get('udp')} packets, ${droppedEarly} dropped while the rule was in place; ` +
          `direct ${JSON.stringify(summary(direct))}; client ${JSON.stringify(summary(client))}; server ${JSON.stringify(summary(o.serverStats))}; client paths ${JSON.stringify(o.clientPaths)}`,
      );
      // The first part went through the relay …
      expect(before).toBeGreaterThanOrEqual(at);
      expect(droppedEarly).toBeGreaterThan(0);
      // … the rest direct: thousands of datagrams on the switch, and the relay carried almost
      // nothing more (a relayed packet or two in flight at the switch is fine).
      expect(sw.get('udp')! - udpBefore).toBeGreaterThan((c2s - at) / 1500 / 2);
      expect(after - before).toBeLessThan(MiB);
      expect(client.relayed).toBe(false);
      expect(client.pathChanges).toBeGreaterThanOrEqual(1);
      expect(o.clientPaths[0]?.relayed).toBe(true);
      expect(o.clientPaths.at(-1)?.relayed).toBe(false);
      expect(o.serverStats.relayed).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'relay restart (%s) mid-transfer with UDP dropped: the same connection completes 48 MiB, hash-verified',
    async (signal) => {
      const seed = String(testSeed(`paths relay restart ${signal}`));
      const lab = await newLab();
      await lab.switchFilter('meta l4proto udp counter drop comment "udp-dropped"');
      const relays = [await startRelay(lab)];
      const c2s = 48 * MiB;
      const s2c = 1 * MiB;
      const at = 12 * MiB;
      const x = await startExchange(lab, `relay restart ${signal}`, seed, () => relays, { c2s, s2c, pause: { dir: 'c2s', at } });

      const checkpoint = await x.client.out.wait<Event & { stats: PeerStats }>((o) => o.event === 'checkpoint' || o.event === 'error', CHECKPOINT_TIMEOUT_MS, 'the checkpoint').catch(x.explain);
      if (checkpoint.event !== 'checkpoint') await x.explain(new Error(`client failed: ${JSON.stringify(checkpoint)}`));
      expect(checkpoint.stats.relayed).toBe(true);
      const first = relays[0]!;
      const beforeStop = relayedBytes(await relayMetrics(lab));
      // Stop the relay; the client goes on writing into the outage.
      const exited = new Promise<number | string>((res) => first.proc.once('exit', (code, sig) => res(code ?? sig ?? -1)));
      first.proc.kill(signal);
      x.client.proc.stdin!.write('go\n');
      const status = await exited;
      expect(status).toBe(signal === 'SIGTERM' ? 0 : 'SIGKILL');
      // … and start it again on the same address and port.
      relays.push(await startRelay(lab));

      const o = await finishExchange(x, c2s, s2c);
      const metrics = await relayMetrics(lab);
      const client = o.result.stats;
      console.log(
        `[paths] relay restart ${signal} SDNET_SEED=${seed}: first relay carried ${(beforeStop / MiB).toFixed(1)} MiB by the checkpoint, exit ${String(status)}; ` +
          `second relay ${(relayedBytes(metrics) / MiB).toFixed(1)} MiB, handshakes ${metrics.get('relay_handshakes_total{mechanism="challenge"}')}; ` +
          `client: checkpoint at t=${String(checkpoint.t)} ms, result at t=${String(o.result.t)} ms (not asserted); client ${JSON.stringify(summary(client))}; server ${JSON.stringify(summary(o.serverStats))}`,
      );
      // Everything after the checkpoint went through the new relay process.
      expect(relayedBytes(metrics)).toBeGreaterThanOrEqual(c2s - at);
      // Both peers reconnected to it.
      expect(metrics.get('relay_handshakes_total{mechanism="challenge"}')).toBeGreaterThanOrEqual(2);
      for (const s of [client, o.serverStats]) {
        expect(s.relays.find((r) => r.home)?.stats.connections).toBeGreaterThanOrEqual(2);
        expect(s.relayed).toBe(true);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'sdnet pipe listen/connect --relay in two namespaces with UDP dropped: 4 MiB each way, hash-verified',
    async () => {
      const seed = String(testSeed('paths sdnet pipe'));
      const lab = await newLab();
      await lab.switchFilter('meta l4proto udp counter drop comment "udp-dropped"');
      // The relay as deployed: its default per-client rate limit (2 MiB/s) stays on.
      const relay = await startRelay(lab, []);
      const toConnector = payloadBytes(seed, 'listener→connector', 4 * MiB);
      const toListener = payloadBytes(seed, 'connector→listener', 4 * MiB);
      const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
      const env: NodeJS.ProcessEnv = { ...process.env };
      delete env.IROH_SECRET;
      delete env.SDNET_RELAY;

      const pipeProc = (host: string, args: string[], input: Uint8Array) => {
        const proc = lab.spawn(host, [process.execPath, SDNET_BIN, 'pipe', ...args], { env });
        const out: Buffer[] = [];
        let err = '';
        proc.stdout!.on('data', (d: Buffer) => out.push(d));
        proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        proc.stdin!.on('error', () => {});
        proc.stdin!.end(input);
        const exited = new Promise<number | string>((res) => proc.once('exit', (code, sig) => res(code ?? sig ?? -1)));
        return { proc, stdout: () => Buffer.concat(out), stderr: () => err, exited };
      };
      // Default binding (0.0.0.0 and [::]): the ticket carries the interfaces' addresses.
      const listener = pipeProc('a', ['listen', '--relay', relay.url], toConnector);
      let ticket: string | undefined;
      for (let i = 0; i < 1000 && ticket === undefined; i++) {
        ticket = /^(endpoint[a-z2-7]+)$/m.exec(listener.stderr())?.[1];
        if (ticket === undefined) {
          const done = await Promise.race([listener.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20))]);
          if (done) break;
        }
      }
      expect(ticket, `no ticket: ${listener.stderr()}`).toBeDefined();
      const connector = pipeProc('b', ['connect', ticket!, '--relay', relay.url], toListener);

      let timer: ReturnType<typeof setTimeout> | undefined;
      const stall = new Promise<'stall'>((r) => (timer = setTimeout(() => r('stall'), TRANSFER_TIMEOUT_MS)));
      const both = await Promise.race([Promise.all([listener.exited, connector.exited]), stall]);
      clearTimeout(timer);
      const metrics = await relayMetrics(lab);
      const dropped = (await switchCounters(lab)).get('udp-dropped') ?? 0;
      const diag = `SDNET_SEED=${seed}\nlistener stderr: ${listener.stderr()}\nconnector stderr: ${connector.stderr()}\nrelay stderr: ${relay.out.stderr}\nlistener got ${listener.stdout().length} B, connector got ${connector.stdout().length} B`;
      console.log(
        `[paths] sdnet pipe SDNET_SEED=${seed}: exits ${JSON.stringify(both)}; relay_bytes_relayed_total=${relayedBytes(metrics)} (${(relayedBytes(metrics) / MiB).toFixed(1)} MiB), ` +
          `rate-limited=${metrics.get('relay_rate_limited_total')}; UDP dropped on the switch=${dropped}`,
      );
      expect(both, diag).toEqual([0, 0]);
      expect(listener.stdout().length, diag).toBe(toListener.length);
      expect(sha(listener.stdout())).toBe(sha(toListener));
      expect(connector.stdout().length, diag).toBe(toConnector.length);
      expect(sha(connector.stdout())).toBe(sha(toConnector));
      expect(listener.stderr()).toMatch(/connection from [0-9a-f]{10}/);
      // Through the relay (both directions), after trying direct UDP.
      expect(relayedBytes(metrics)).toBeGreaterThanOrEqual(8 * MiB);
      expect(dropped).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );
});
