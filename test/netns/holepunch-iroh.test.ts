/**
 * Hole punching TS ↔ iroh through NATs (issue 17), in network namespaces: the NAT lab of
 * holepunch.test.ts (shared/docs/holepunch.md §5.1), with a real iroh 1.0 node
 * (`@number0/iroh`, test/helpers/holepunch-iroh-peer.ts) on one side and an sdnet endpoint
 * (test/helpers/holepunch-peer.ts, QAD on) on the other. Every ordered cell of iroh behind
 * none / cone / home × sdnet behind none / cone / home, in both roles (iroh dials, sdnet
 * dials): 18 cells. Each cell has its own `sdnet-relay` (HTTP + QAD + metrics) on the public
 * bridge, and the dialler knows only the server's id and that relay's URL. A cell that can
 * punch must be on a direct path within 15 s and then carry 32 MiB (hash-verified) while the
 * relay's `relay_bytes_relayed_total` rises by less than 1 MiB (counted from before the dial,
 * so handshake and relay phase included); the dialler's own count of its relay path's bytes
 * during the transfer must be below 1 MiB too.
 *
 * iroh cannot run QUIC address discovery against a test relay (iroh's QAD client checks the
 * relay's certificate against WebPKI roots; our relay is plain HTTP on a private lab address),
 * so iroh behind a NAT knows only its private address 10.0.<i>.2: its ADD_ADDRESS (as server)
 * and REACH_OUT (as client) name nothing the other site can reach. sdnet learns its public
 * address by QAD and advertises it. So:
 * - sdnet behind none or cone (no filter, or endpoint-independent filtering): iroh's probes to
 *   sdnet's public address get in, sdnet answers them to their source (iroh's NAT mapping),
 *   and the path opens — direct, whatever iroh is behind.
 * - iroh behind none: its advertised address is public, sdnet probes it, which also opens
 *   sdnet's own filter for iroh's answers — direct, whatever sdnet is behind.
 * - **iroh behind cone or home × sdnet behind home, both roles (4 cells): left out of the
 *   direct assertion.** sdnet's home router (address-and-port-dependent filtering) drops iroh's
 *   probes unless sdnet has sent to iroh's public mapping first, and sdnet never learns that
 *   mapping (iroh does not know it, and its probes, the only packets that would reveal it,
 *   are the ones dropped). These cells must stay relayed and still carry the 32 MiB
 *   (hash-verified, and the relay's counter shows it carried at least that much).
 * strict (EDM) sites are not part of this matrix (the issue asks for none / cone / home).
 *
 * The cells of a lab start their relays and servers together and, once all are up, dial at
 * once (four 32 MiB transfers on this 2-core machine). Written while sdnet, as the server,
 * still left a direct path after two PTOs alone: event-loop stalls of 80–220 ms under that
 * load took it back to the relay and iroh then sent megabytes there (fixed: two PTOs *and*
 * 1 s without a packet on the path). SDNET_HOLEPUNCH_SERIAL=1 dials one after another.
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../relay-server/src/index.ts';
import { JsonLines, NatLab, netnsUnavailableReason, type NatProfile } from '../helpers/netns.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] hole punching TS ↔ iroh through NATs (netns + nftables): ${reason}`);

const root = fileURLToPath(new URL('../..', import.meta.url));
const RELAY_BIN = `${root}bin/sdnet-relay.js`;
const SDNET_PEER = `${root}test/helpers/holepunch-peer.ts`;
const IROH_PEER = `${root}test/helpers/holepunch-iroh-peer.ts`;
const MiB = 1024 * 1024;
const BYTES = 32 * MiB;
/** SDNET_HOLEPUNCH_SERIAL=1: dial a lab's cells one after another instead of at once (see the header). */
const PARALLEL = process.env.SDNET_HOLEPUNCH_SERIAL !== '1';

const labs: NatLab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) await lab.destroy();
});

type Dialler = 'iroh' | 'sdnet';
interface Cell {
  iroh: NatProfile;
  sdnet: NatProfile;
  dialler: Dialler;
  direct: boolean;
}

const PROFILES: NatProfile[] = ['none', 'cone', 'home'];
/** iroh knows only its private address: sdnet behind home never learns where to send first. */
const punchable = (irohNat: NatProfile, sdnetNat: NatProfile) => irohNat === 'none' || sdnetNat !== 'home';
const CELLS: Cell[] = (['iroh', 'sdnet'] as const).flatMap((dialler) => PROFILES.flatMap((irohNat) => PROFILES.map((sdnetNat) => ({ iroh: irohNat, sdnet: sdnetNat, dialler, direct: punchable(irohNat, sdnetNat) }))));
/** Up to four cells (eight sites) per lab. */
const GROUPS = Array.from({ length: Math.ceil(CELLS.length / 4) }, (_, g) => CELLS.slice(g * 4, g * 4 + 4));
const cellName = (c: Cell) => `${c.dialler} dials, iroh ${c.iroh} × sdnet ${c.sdnet}`;

async function relayedBytes(lab: NatLab, metricsPort: number): Promise<number> {
  const url = `http://127.0.0.1:${metricsPort}/metrics`;
  const r = await lab.exec('public', [process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async r => process.stdout.write(await r.text()), e => { console.error(String(e)); process.exit(1) })`]);
  if (r.code !== 0) throw new Error(`fetching ${url} failed: ${r.stderr}`);
  return parsePrometheusText(r.stdout).get('relay_bytes_relayed_total') ?? 0;
}

interface PathLine {
  event: 'direct' | 'relayed';
  ms?: number;
  path?: string;
}
interface DoneLine {
  sentHash: string;
  peerHash: string;
  relayBytesSent: number;
  relayBytesReceived: number;
}

interface CellResult {
  cell: Cell;
  path?: PathLine;
  done?: DoneLine;
  relayed?: number;
  error?: string;
  serverAddrs?: string[];
  /** Both peers' JSON lines, for the log when something went wrong. */
  lines: { server: unknown[]; client: unknown[] };
}

interface Prepared {
  res: CellResult;
  /** Dial, transfer and measure; undefined when the setup already failed. */
  dial?: () => Promise<void>;
}

/** Start the cell's relay and server; the returned `dial` runs the rest. */
async function prepareCell(lab: NatLab, cell: Cell, k: number): Promise<Prepared> {
  const metricsPort = 9090 + k;
  const qadPort = 7842 + k;
  const res: CellResult = { cell, lines: { server: [], client: [] } };
  try {
    const relay = new JsonLines(
      lab.spawn('public', [process.execPath, RELAY_BIN, '--host', lab.publicAddr, '--port', String(3340 + k), '--qad-port', String(qadPort), '--metrics-host', '127.0.0.1', '--metrics-port', String(metricsPort), '--rate-limit', '0', '--log-level', 'warn']),
    );
    const url = (await relay.waitText(/^https?:\/\/\S+/, 30_000, `relay ${k} URL`)).trim();
    const irohArgv = (...a: string[]) => [process.execPath, IROH_PEER, ...a];
    const sdnetArgv = (...a: string[]) => [process.execPath, SDNET_PEER, a[0]!, url, String(qadPort), ...a.slice(1)];
    const serverSite = cell.dialler === 'iroh' ? `s${k}` : `i${k}`;
    const dialSite = cell.dialler === 'iroh' ? `i${k}` : `s${k}`;
    const server = new JsonLines(lab.spawn(serverSite, cell.dialler === 'iroh' ? sdnetArgv('serve') : irohArgv('serve', url)));
    res.lines.server = server.objects;
    const ready = await server.wait<{ id: string; direct: string[] }>((o) => o.event === 'ready', 60_000, `${serverSite} ready`);
    res.serverAddrs = ready.direct;
    const dial = async () => {
      try {
        const before = await relayedBytes(lab, metricsPort);
        const client = new JsonLines(lab.spawn(dialSite, cell.dialler === 'iroh' ? irohArgv('dial', url, ready.id, String(BYTES)) : sdnetArgv('dial', ready.id, String(BYTES))));
        res.lines.client = client.objects;
        res.path = await client.wait<PathLine>((o) => o.event === 'direct' || o.event === 'relayed', 60_000, `${dialSite} path`);
        res.done = await client.wait<DoneLine>((o) => o.event === 'done', 240_000, `${dialSite} transfer`);
        res.relayed = (await relayedBytes(lab, metricsPort)) - before;
      } catch (err) {
        res.error = String(err);
      }
    };
    return { res, dial };
  } catch (err) {
    res.error = String(err);
    return { res };
  }
}

describe.skipIf(reason !== undefined)('hole punching TS ↔ iroh through NATs (root)', () => {
  it.each(GROUPS.map((cells) => [cells.map(cellName).join('; '), cells] as const))('%s: direct within 15 s and 32 MiB off the relay, or (iroh NATed × sdnet home) relayed and carried', async (_name, cells) => {
    const sites = cells.flatMap((c, k) => [
      { name: `i${k}`, nat: c.iroh },
      { name: `s${k}`, nat: c.sdnet },
    ]);
    const lab = await NatLab.create(sites);
    labs.push(lab);
    // All relays and servers up first; then the dials, at once (or one after another, SDNET_HOLEPUNCH_SERIAL=1).
    const prepared = await Promise.all(cells.map((cell, k) => prepareCell(lab, cell, k)));
    if (PARALLEL) await Promise.all(prepared.map((p) => p.dial?.()));
    else for (const p of prepared) await p.dial?.();
    const results = prepared.map((p) => p.res);
    for (const { cell, path, done, relayed, serverAddrs, error, lines } of results) {
      const name = cellName(cell);
      const own = done === undefined ? 'no' : `${done.relayBytesSent} B out / ${done.relayBytesReceived}`;
      console.log(
        `[holepunch-iroh] ${name}: ${path?.event ?? 'no path line'}${path?.ms !== undefined ? ` after ${path.ms} ms (${path.path})` : ''}; relay relayed ${relayed} B from dial to done, the dialler's relay path ${own} B in during 32 MiB; server advertised ${JSON.stringify(serverAddrs)}` +
          (relayed !== undefined && relayed > 100_000 && cell.direct ? `\n  dialler's done line ${JSON.stringify(done)}` : '') +
          (error !== undefined ? `\n  ERROR ${error}\n  server lines ${JSON.stringify(lines.server)}\n  client lines ${JSON.stringify(lines.client)}` : ''),
      );
    }
    for (const { cell, path, done, relayed, error } of results) {
      const name = cellName(cell);
      expect(error, `${name}: ran to the end`).toBeUndefined();
      expect(done!.peerHash, `${name}: hash`).toBe(done!.sentHash);
      if (cell.direct) {
        expect(path!.event, `${name}: on a direct path within 15 s`).toBe('direct');
        expect(path!.ms!, `${name}: time to direct`).toBeLessThanOrEqual(15_000);
        expect(relayed!, `${name}: relay_bytes_relayed_total rise`).toBeLessThan(1 * MiB);
        expect(done!.relayBytesSent + done!.relayBytesReceived, `${name}: dialler's relay path bytes during the transfer`).toBeLessThan(1 * MiB);
      } else {
        expect(path!.event, `${name}: stays relayed`).toBe('relayed');
        expect(relayed!, `${name}: the relay carried the transfer`).toBeGreaterThanOrEqual(BYTES);
      }
    }
  }, 400_000);
});
