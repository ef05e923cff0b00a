/**
 * Real loss (shared/docs/reliability.md §6, "nft … numgen random mod 100 < N drop"): our QUIC
 * and a real iroh 1.0 node (`@number0/iroh`, no relays, no discovery: direct UDP only) in two
 * network namespaces on one switch, with nftables on the switch dropping 5 % of the UDP
 * packets going ONE way. Each case moves 16 MiB in each direction at once on one
 * bidirectional stream, and each receiver hashes what it got (SHA-256), checked against the
 * hash of the seeded payload.
 *
 * Four cases: both roles (TS client → iroh server, iroh client → TS server) × both lossy
 * directions (TS → iroh, iroh → TS). So each direction of data meets the loss in each role,
 * and the other direction of the same case runs with its ACKs being dropped instead.
 *
 * The drop counter on the switch must show packets really were dropped (no vacuous pass), one
 * datagram at a time (UDP GSO batching is turned off on the hosts' interfaces, see below), and
 * the QUIC stack whose packets were dropped must have declared packets lost. Nothing is timed:
 * the timeouts only bound a stall.
 *
 * Randomness: the payload bytes and both secret keys derive from the printed seed
 * (`SDNET_SEED=<seed>` re-runs a case with the same ones); which packets nftables drops
 * comes from the kernel's `numgen random` and cannot be seeded, nor can the QUIC stacks' own
 * randomness (connection ids, TLS randoms, packet number skips).
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonLines, NetnsLab, netnsUnavailableReason } from '../helpers/netns.ts';
import { payloadSha256 } from '../helpers/quic-loss-peer.ts';
import { testSeed } from '../helpers/seed.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] quic-loss (netns + nftables): ${reason}`);

const root = fileURLToPath(new URL('../..', import.meta.url));
const PEER = `${root}test/helpers/quic-loss-peer.ts`;
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((p) => existsSync(p)) ?? 'ip';
const BYTES = 16 * 1024 * 1024;
const LOSS_PERCENT = 5;
const SERVER_PORT = 4433;
/** Per-test budget; the transfer itself gets most of it. Generous: 2 cores, both stacks busy. */
const TEST_TIMEOUT_MS = 90_000;
const TRANSFER_TIMEOUT_MS = 60_000;

type Impl = 'ts' | 'iroh';
const other = (i: Impl): Impl => (i === 'ts' ? 'iroh' : 'ts');

const labs: NetnsLab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) {
    await lab.destroy(); // SIGKILLs the peers, deletes the namespaces
    expect(NetnsLab.namespacesOf(lab.id)).toEqual([]);
  }
});

interface Counter {
  packets: number;
  bytes: number;
}

/** The switch's counters, by rule comment. */
function counters(ruleset: string): Map<string, Counter> {
  const out = new Map<string, Counter>();
  for (const m of ruleset.matchAll(/counter packets (\d+) bytes (\d+).*comment "([^"]+)"/g)) {
    out.set(m[3]!, { packets: Number(m[1]), bytes: Number(m[2]) });
  }
  return out;
}

interface Stats {
  lostPackets: number;
  paths?: Array<{ remoteAddr: string; isIp: boolean; isRelay: boolean; isSelected: boolean }>;
  [k: string]: unknown;
}
type Event = Record<string, unknown> & { event: string };

const NAMES: Record<Impl, string> = { ts: 'TS', iroh: 'iroh' };
const CASES = (
  [
    { client: 'ts', server: 'iroh', lossyFrom: 'ts' },
    { client: 'ts', server: 'iroh', lossyFrom: 'iroh' },
    { client: 'iroh', server: 'ts', lossyFrom: 'iroh' },
    { client: 'iroh', server: 'ts', lossyFrom: 'ts' },
  ] as const
).map((c) => ({ ...c, name: `${NAMES[c.client]} client → ${NAMES[c.server]} server, ${LOSS_PERCENT} % of ${NAMES[c.lossyFrom]} → ${NAMES[other(c.lossyFrom)]} dropped` }));

describe.skipIf(reason !== undefined)(`QUIC under real loss: ${LOSS_PERCENT} % of UDP dropped one way by nftables (root)`, () => {
  it.each(CASES)(
    '$name: 16 MiB each way completes, hash-verified',
    async ({ client, server, lossyFrom, name: label }) => {
      const seed = String(testSeed(`quic-loss ${label}`));
      const lab = await NetnsLab.create(['ts', 'iroh']);
      labs.push(lab);
      const addr = { ts: lab.hosts.ts!.addr, iroh: lab.hosts.iroh!.addr };
      const lossyTo = other(lossyFrom);
      // iroh (noq/quinn-udp) sends with UDP GSO: one skb carrying up to dozens of datagrams
      // crosses the veth and the bridge whole, so a drop rule would take out a whole batch at
      // a time (bursty loss, a different experiment). With at most one segment per skb
      // allowed on the hosts' interfaces, the kernel segments in software before the veth and
      // the switch sees — and drops — single datagrams.
      for (const h of ['ts', 'iroh']) {
        const r = await lab.exec(h, [IP, 'link', 'set', 'dev', lab.hosts[h]!.iface, 'gso_max_segs', '1']);
        expect(r.code, r.stderr).toBe(0);
      }

      // Bridge-family rules on the switch's forward hook (see NetnsLab.switchFilter): `ip
      // saddr` picks one direction (nft adds the `ether type ip` dependency itself). A plain
      // counter first sees every UDP packet of that direction, then the random drop — the
      // kernel's numgen, unseeded — then a counter for the other direction, which is never
      // dropped.
      await lab.switchFilter(
        `ip saddr ${addr[lossyFrom]} meta l4proto udp counter comment "sent-lossy"`,
        `ip saddr ${addr[lossyFrom]} meta l4proto udp numgen random mod 100 < ${LOSS_PERCENT} counter drop comment "dropped"`,
        `ip saddr ${addr[lossyTo]} meta l4proto udp counter comment "sent-clean"`,
      );

      const keySeed = { ts: `${seed}/ts`, iroh: `${seed}/iroh` };
      const serverProc = lab.spawn(server, [
        process.execPath,
        PEER,
        server,
        'serve',
        JSON.stringify({ bind: `${addr[server]}:${SERVER_PORT}`, seed, bytes: BYTES, keySeed: keySeed[server] }),
      ]);
      const serverOut = new JsonLines(serverProc);
      const ready = await serverOut.wait<Event & { id: string; bound: string[] }>((o) => o.event === 'ready' || o.event === 'error', 15_000, `the ${server} server to bind`);
      expect(ready, JSON.stringify(ready)).toMatchObject({ event: 'ready', impl: server });
      expect(ready.bound).toContain(`${addr[server]}:${SERVER_PORT}`);

      const clientProc = lab.spawn(client, [
        process.execPath,
        PEER,
        client,
        'dial',
        JSON.stringify({ bind: `${addr[client]}:0`, seed, bytes: BYTES, keySeed: keySeed[client], peer: { id: ready.id, addr: `${addr[server]}:${SERVER_PORT}` } }),
      ]);
      const clientOut = new JsonLines(clientProc);

      const explain = async (err: unknown): Promise<never> => {
        // Leave enough behind to tell a stall from a failure.
        const nft = await lab.nftList('switch').catch((e: unknown) => String(e));
        throw new Error(
          `${label} (SDNET_SEED=${seed}): ${(err as Error).message}\n` +
            `client stdout: ${clientOut.lines.join('\n')}\nclient stderr: ${clientOut.stderr}\n` +
            `server stdout: ${serverOut.lines.join('\n')}\nserver stderr: ${serverOut.stderr}\nswitch: ${nft}`,
        );
      };
      const [result, received] = await Promise.all([
        clientOut.wait<Event>((o) => o.event === 'result' || o.event === 'error', TRANSFER_TIMEOUT_MS, 'the client result'),
        serverOut.wait<Event>((o) => o.event === 'received' || o.event === 'error', TRANSFER_TIMEOUT_MS, "the server's receipt"),
      ]).catch(explain);
      if (result.event === 'error' || received.event === 'error') await explain(new Error(`a peer failed: ${JSON.stringify(result)} ${JSON.stringify(received)}`));

      // The server's counters after the exchange (it stays up until the lab goes).
      serverProc.stdin!.write('stats\n');
      const serverStats = (await serverOut.wait<Event & { stats: Stats }>((o) => o.event === 'stats', 5_000, 'server stats').catch(explain)).stats;
      const clientStats = result.stats as Stats;
      const c = counters(await lab.nftList('switch'));
      const sentLossy = c.get('sent-lossy');
      const dropped = c.get('dropped');
      const sentClean = c.get('sent-clean');
      const statsOf: Record<Impl, Stats> = { [client]: clientStats, [server]: serverStats } as Record<Impl, Stats>;
      console.log(
        `[quic-loss] ${label}: SDNET_SEED=${seed}; switch: ${NAMES[lossyFrom]} → ${NAMES[lossyTo]} ${sentLossy?.packets} UDP packets, ` +
          `${dropped?.packets} dropped (${((100 * (dropped?.packets ?? 0)) / (sentLossy?.packets || 1)).toFixed(2)} %); ` +
          `${NAMES[lossyTo]} → ${NAMES[lossyFrom]} ${sentClean?.packets} packets; ` +
          `lost packets declared: TS ${statsOf.ts.lostPackets}, iroh ${statsOf.iroh.lostPackets}`,
      );
      console.log(`[quic-loss] ${label}: switch ${JSON.stringify(Object.fromEntries(c))}; TS stats ${JSON.stringify(statsOf.ts)}; iroh stats ${JSON.stringify(statsOf.iroh)}`);

      // Both directions complete and intact: each receiver's own SHA-256 of what it read.
      const c2s = payloadSha256(seed, 'c2s', BYTES);
      const s2c = payloadSha256(seed, 's2c', BYTES);
      expect(received).toMatchObject({ bytes: BYTES, sha256: c2s, extra: 0 });
      expect(result.received).toEqual({ bytes: BYTES, sha256: s2c });
      // The server's hash reached the client too (its trailer, after the 16 MiB).
      expect(result.peerReceivedSha256).toBe(c2s);

      // Each side authenticated the other's key (derived from the seed).
      const clientReady = await clientOut.wait<Event & { id: string }>((o) => o.event === 'ready', 1_000, 'client ready');
      expect((await clientOut.wait((o) => o.event === 'connected', 1_000, 'client connected')).remoteId).toBe(ready.id);
      expect((await serverOut.wait((o) => o.event === 'connected', 1_000, 'server connected')).remoteId).toBe(clientReady.id);

      // Direct UDP between the two namespaces, no relay: iroh's only path is the TS host.
      const irohPaths = statsOf.iroh.paths ?? [];
      expect(irohPaths.filter((p) => p.isSelected).map((p) => ({ ip: p.isIp, relay: p.isRelay, host: p.remoteAddr.replace(/:\d+$/, '') }))).toEqual([
        { ip: true, relay: false, host: addr.ts },
      ]);

      // The loss was real and one-way: the rule matched, and dropped a share near 5 % (the
      // bounds are loose: over thousands of packets a binomial share is far inside them).
      expect(sentLossy?.packets).toBeGreaterThan(BYTES / 1500 / 2);
      expect(sentClean?.packets).toBeGreaterThan(BYTES / 1500 / 2);
      expect(dropped?.packets).toBeGreaterThan(0);
      expect(dropped!.packets / sentLossy!.packets).toBeGreaterThan(0.01);
      expect(dropped!.packets / sentLossy!.packets).toBeLessThan(0.15);
      // Per datagram, not per GSO batch: the switch saw (about) as many packets as the lossy
      // sender says it sent (its counters were read before the switch's; a few datagrams may
      // die in a veth queue before the switch).
      const senderDatagrams = lossyFrom === 'ts' ? Number(statsOf.ts.packetsSent) : Number(statsOf.iroh.udpTxDatagrams);
      expect(senderDatagrams).toBeGreaterThan(0);
      expect(sentLossy!.packets).toBeGreaterThan(0.9 * senderDatagrams);
      // And the stack whose packets were dropped noticed: loss recovery ran.
      expect(statsOf[lossyFrom].lostPackets).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );
});
