/**
 * Path changes on a hole-punched connection (issue 17), in network namespaces: the NAT lab of
 * test/netns/holepunch.test.ts (sdnet-relay with QAD on a public bridge, sites behind routers
 * with holepunch.md §5.1's NAT profiles), TS ↔ TS, each client dialling with the server's id
 * and the relay URL only (`test/helpers/holepunch-peer.ts session` / `serve`).
 *
 * 1. UDP cut mid-transfer and restored (client home × server cone): 8 MiB into a 64 MiB upload
 *    the client's router starts dropping all UDP; the connection goes back to the relay, the
 *    upload completes there (hash-verified, the relay path carried at least what was left).
 *    Then UDP passes again: the connection is on a direct path once more and carries 16 MiB
 *    with < 1 MiB over the relay path.
 * 2. NAT rebinding (client strict × server none): 8 MiB into a 32 MiB upload the client's
 *    router forgets its UDP mappings (`conntrack -D`), so the EDM NAT gives the next packets a
 *    new random port. The server validates the new address on the same multipath path and the
 *    upload completes direct (hash, < 1 MiB over the relay path); the router's conntrack table
 *    shows the mapping did change.
 * 3. Eight extra interfaces with addresses on the client's host (client cone × server home):
 *    `dummy` links, or veth pairs where the kernel has no dummy module (this machine's); its
 *    REACH_OUT rounds name them all, and the connection is still direct within 15 s.
 *
 * Nothing is timed beyond the issue's bound (15 s to a direct path); the other waits only bound
 * a stall. Needs root; skips with the reason printed otherwise (the rebinding case also needs
 * the `conntrack` tool, which `.ci/run` installs).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonLines, NatLab, netnsUnavailableReason } from '../helpers/netns.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] hole-punched path changes (netns + nftables): ${reason}`);
const conntrackReason = ((): string | undefined => {
  try {
    execFileSync('conntrack', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'the `conntrack` tool (Debian package conntrack) is not installed';
  }
})();
if (reason === undefined && conntrackReason !== undefined) console.log(`[skip] NAT rebinding: ${conntrackReason}`);

const root = fileURLToPath(new URL('../..', import.meta.url));
const RELAY_BIN = `${root}bin/sdnet-relay.js`;
const PEER = `${root}test/helpers/holepunch-peer.ts`;
const MiB = 1024 * 1024;

const labs: NatLab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) await lab.destroy();
});

interface Done {
  sentHash: string;
  peerHash: string;
  relayBytesSent: number;
  relayBytesReceived: number;
  relayed: boolean;
}
type Path = { event: 'path'; relayed: boolean; path: string; reason: string };

async function startLab(sites: Array<{ name: string; nat: 'none' | 'cone' | 'home' | 'strict' }>): Promise<{ lab: NatLab; url: string }> {
  const lab = await NatLab.create(sites);
  labs.push(lab);
  const relay = new JsonLines(lab.spawn('public', [process.execPath, RELAY_BIN, '--host', lab.publicAddr, '--port', '3340', '--qad-port', '7842', '--no-metrics', '--rate-limit', '0', '--log-level', 'warn']));
  const url = (await relay.waitText(/^https?:\/\/\S+/, 30_000, 'the relay URL')).trim();
  return { lab, url };
}

/** A server in `server`'s site and a session client in `client`'s: resolves once the client reports its first path. */
async function connect(lab: NatLab, url: string, client: string, server: string) {
  const s = new JsonLines(lab.spawn(server, [process.execPath, PEER, 'serve', url, '7842']));
  const ready = await s.wait<{ id: string }>((o) => o.event === 'ready', 60_000, `${server} ready`);
  const proc = lab.spawn(client, [process.execPath, PEER, 'session', url, '7842', ready.id]);
  const c = new JsonLines(proc);
  const first = await c.wait<{ event: string; ms?: number; path?: string; local: string[] }>((o) => o.event === 'direct' || o.event === 'relayed', 60_000, `${client} path`);
  const send = (line: string) => proc.stdin!.write(`${line}\n`);
  /** Path events from index `from` on. */
  const paths = (from = 0) => c.objects.slice(from).filter((o): o is Path => o.event === 'path');
  return { c, first, send, paths };
}

const dones = (c: JsonLines) => c.objects.filter((o) => o.event === 'done') as unknown as Done[];

/** The NAT's public ports of the client's UDP flows toward `peer`, from the router's conntrack table. */
async function mappedPorts(lab: NatLab, site: string, peer: string): Promise<string[]> {
  const r = await lab.exec(`${site}/router`, ['conntrack', '-L', '-p', 'udp', '--reply-src', peer]);
  return [...r.stdout.matchAll(/src=\S+ dst=\S+ sport=\d+ dport=(\d+)\s*(?:\[\w+\]\s*)?(?:mark|zone|use|$)/gm)].map((m) => m[1]!);
}

describe.skipIf(reason !== undefined)('hole-punched connections when the network changes (root)', () => {
  it('UDP cut mid-transfer: back to the relay without losing data; UDP restored: direct again, and off the relay', async () => {
    const { lab, url } = await startLab([
      { name: 'c', nat: 'home' },
      { name: 's', nat: 'cone' },
    ]);
    const { c, first, send, paths } = await connect(lab, url, 'c', 's');
    expect(first.event, 'direct within 15 s').toBe('direct');
    const mark = c.objects.length;
    send(`send ${64 * MiB} ${8 * MiB}`);
    await c.wait((o) => o.event === 'paused', 60_000, 'the pause at 8 MiB');
    // The client's router drops every UDP datagram it would forward, both ways.
    const cutRules = await lab.exec('c/router', ['nft', '-f', '-'], { input: 'table ip cut {\n  chain forward {\n    type filter hook forward priority -10; policy accept;\n    meta l4proto udp drop\n  }\n}\n' });
    expect(cutRules.code, cutRules.stderr).toBe(0);
    send('go');
    await c.wait((o) => o.event === 'path' && o.relayed === true, 60_000, 'the fall back to the relay');
    const cut = await c.wait<Done>((o) => o.event === 'done', 180_000, 'the 64 MiB upload');
    expect(cut.peerHash).toBe(cut.sentHash);
    // At most ~8 MiB (plus what was in flight) went direct: the relay path carried the rest.
    expect(cut.relayBytesSent).toBeGreaterThan(48 * MiB);
    console.log(`[holepunch-paths] cut: ${paths(mark).map((p) => `${p.relayed ? 'relay' : 'direct'} (${p.reason})`).join(' → ')}; relay path carried ${cut.relayBytesSent} B of 64 MiB`);

    const restoreMark = c.objects.length;
    await lab.exec('c/router', ['nft', 'delete', 'table', 'ip', 'cut']);
    const back = await c.wait<Path>((o) => o.event === 'path' && o.relayed === false && c.objects.indexOf(o) >= restoreMark, 90_000, 'a direct path again after UDP came back');
    send(`send ${16 * MiB}`);
    await c.wait(() => dones(c).length === 2, 120_000, 'the 16 MiB after the restore');
    const after = dones(c)[1]!;
    console.log(`[holepunch-paths] restored: direct again at ${back.path} (${back.reason}); relay path carried ${after.relayBytesSent + after.relayBytesReceived} B during 16 MiB`);
    expect(after.peerHash).toBe(after.sentHash);
    expect(after.relayed).toBe(false);
    expect(after.relayBytesSent + after.relayBytesReceived).toBeLessThan(1 * MiB);
  }, 420_000);

  it.skipIf(conntrackReason !== undefined)('NAT rebinding mid-transfer (new EDM mapping): the server validates the new address on the same path, and the upload stays direct', async () => {
    const { lab, url } = await startLab([
      { name: 'c', nat: 'strict' },
      { name: 's', nat: 'none' },
    ]);
    const serverAddr = lab.sites.s!.addr;
    const { c, first, send } = await connect(lab, url, 'c', 's');
    expect(first.event, 'direct within 15 s').toBe('direct');
    send(`send ${32 * MiB} ${8 * MiB}`);
    await c.wait((o) => o.event === 'paused', 60_000, 'the pause at 8 MiB');
    const before = await mappedPorts(lab, 'c', serverAddr);
    expect(before.length, 'a UDP mapping toward the server').toBeGreaterThan(0);
    // The router forgets every UDP mapping: the next datagram from the client gets a new random port.
    await lab.exec('c/router', ['conntrack', '-D', '-p', 'udp']);
    send('go');
    const done = await c.wait<Done>((o) => o.event === 'done', 180_000, 'the 32 MiB upload');
    const afterPorts = await mappedPorts(lab, 'c', serverAddr);
    console.log(`[holepunch-paths] rebinding: mapped port(s) toward the server ${before.join(',')} → ${afterPorts.join(',')}; relay path carried ${done.relayBytesSent + done.relayBytesReceived} B during 32 MiB`);
    expect(afterPorts.length).toBeGreaterThan(0);
    expect(afterPorts.some((p) => !before.includes(p)), 'the NAT gave a new mapping').toBe(true);
    expect(done.peerHash).toBe(done.sentHash);
    expect(done.relayed).toBe(false);
    expect(done.relayBytesSent + done.relayBytesReceived).toBeLessThan(1 * MiB);
  }, 300_000);

  it('eight extra dummy interfaces on the client host: still direct within 15 s', async () => {
    const { lab, url } = await startLab([
      { name: 'c', nat: 'cone' },
      { name: 's', nat: 'home' },
    ]);
    // A `dummy` link where the kernel has the module; else a veth pair with both ends on the
    // host (this machine's kernel has no dummy module): either way an interface with an address
    // that leads nowhere, which the endpoint lists among its own.
    const dummy = (await lab.exec('c', ['ip', 'link', 'add', 'dummy0', 'type', 'dummy'])).code === 0;
    for (let i = 0; i < 8; i++) {
      const name = dummy ? `dummy${i}` : `xtra${i}`;
      const create = dummy ? ['ip', 'link', 'add', name, 'type', 'dummy'] : ['ip', 'link', 'add', name, 'type', 'veth', 'peer', 'name', `xtrap${i}`];
      for (const argv of [...(dummy && i === 0 ? [] : [create]), ['ip', 'addr', 'add', `172.16.${i}.1/24`, 'dev', name], ['ip', 'link', 'set', name, 'up'], ...(dummy ? [] : [['ip', 'link', 'set', `xtrap${i}`, 'up']])]) {
        const r = await lab.exec('c', argv);
        expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
      }
    }
    const links = await lab.exec('c', ['ip', '-o', '-4', 'addr', 'show']);
    expect(links.stdout.match(/172\.16\.\d\.1/g)?.length).toBe(8);
    const { c, first, send } = await connect(lab, url, 'c', 's');
    console.log(`[holepunch-paths] 8 dummy interfaces: ${first.event}${first.ms !== undefined ? ` after ${first.ms} ms (${first.path})` : ''}`);
    expect(first.event, 'direct within 15 s').toBe('direct');
    // The endpoint lists them among its addresses (what its REACH_OUT rounds announce).
    expect(first.local.filter((a) => a.startsWith('172.16.')).length).toBe(8);
    send(`send ${4 * MiB}`);
    const done = await c.wait<Done>((o) => o.event === 'done', 120_000, 'the 4 MiB upload');
    expect(done.peerHash).toBe(done.sentHash);
    expect(done.relayed).toBe(false);
  }, 180_000);
});
