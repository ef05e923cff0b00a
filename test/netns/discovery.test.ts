/**
 * Discovery acceptance in network namespaces (issue 15):
 *
 * 1. A LAN with no relay: two namespaces on one bridge, `sdnet up` in each with mDNS on;
 *    each appears in the other's `sdnet devices --json` as `discovered` (the test's deadline
 *    is generous; the time is printed and measured in bench/discovery.ts, not asserted).
 * 2. pkarr through sdnet-relay: device A can reach the others only through the relay (the
 *    switch drops UDP between the devices, as a NAT that lets only the relay through would);
 *    A runs `sdnet pipe listen --relay URL`, publishing its record at the relay's `/pkarr`;
 *    from C, `sdnet resolve <A id>` returns A's relay URL and `sdnet pipe connect <A id>`
 *    moves data to A knowing only the id and the relay.
 * 3. LAN pairing with no relay: `sdnet pair invite` in one namespace, `sdnet pair join` with
 *    the typed words in the other; the joiner finds the initiator by the mDNS user-data
 *    `pair:<R>`; both end paired. Then `sdnet up` on both (new ports, still no relay): each
 *    finds its paired device on mDNS, dials it, and lists it as `connected`.
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonLines, NetnsLab, netnsUnavailableReason } from '../helpers/netns.ts';
import { cleanEnv, devicesJson, killAll, runSdnet, startSdnet, startUp } from '../helpers/sdnet-proc.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] discovery (netns): ${reason}`);

const root = fileURLToPath(new URL('../..', import.meta.url));
const RELAY_BIN = `${root}bin/sdnet-relay.js`;
const SDNET_BIN = `${root}bin/sdnet.js`;

const labs: NetnsLab[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await killAll();
  for (const lab of labs.splice(0)) await lab.destroy();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function until<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(reason !== undefined)('discovery in network namespaces (root)', () => {
  it('LAN, no relay: each sdnet up appears in the other\'s devices as discovered', { timeout: 180_000 }, async () => {
    const lab = await NetnsLab.create(['a', 'b']);
    labs.push(lab);
    const base = await mkdtemp(join(tmpdir(), 'sdnet-netns-disc-'));
    dirs.push(base);
    const dir = { a: join(base, 'a'), b: join(base, 'b') };
    const env = cleanEnv({ SDNET_MDNS: '1' });
    const inNs = (h: 'a' | 'b') => ({ prefix: ['ip', 'netns', 'exec', lab.hosts[h]!.netns], env });
    const ids = {
      a: (JSON.parse((await runSdnet(['init', '--json', '--data', dir.a, '--name', 'alice'])).stdout) as { id: string }).id,
      b: (JSON.parse((await runSdnet(['init', '--json', '--data', dir.b, '--name', 'bob'])).stdout) as { id: string }).id,
    };
    const t0 = performance.now();
    const ups = (['a', 'b'] as const).map((h) => startUp(['--data', dir[h], '--bind', `${lab.hosts[h]!.addr}:0`], inNs(h)));
    for (const u of ups) await u.out.waitText(/^online /, 60_000, 'online');
    const seen = async (h: 'a' | 'b', other: 'a' | 'b'): Promise<number> => {
      await until(async () => ((await devicesJson(dir[h], inNs(h))).some((d) => d.id === ids[other] && d.state === 'discovered') ? true : undefined), 60_000, `${h} discovers ${other}`);
      return performance.now() - t0;
    };
    const [ab, ba] = await Promise.all([seen('a', 'b'), seen('b', 'a')]);
    console.log(JSON.stringify({ measure: 'netns up→discovered (incl. process start and polling)', aSeesBMs: Math.round(ab), bSeesAMs: Math.round(ba) }));
    for (const u of ups) u.child.kill('SIGINT');
    for (const u of ups) expect(await u.exited).toBe(0);
  });

  it('pkarr at sdnet-relay: resolve and pipe connect by id alone, UDP between the devices dropped', { timeout: 180_000 }, async () => {
    const lab = await NetnsLab.create(['relay', 'a', 'c']);
    labs.push(lab);
    // Between the two devices nothing passes but TCP (to the relay): A is reachable only through it.
    await lab.switchFilter(`ip saddr ${lab.hosts.a!.addr} ip daddr ${lab.hosts.c!.addr} counter drop`, `ip saddr ${lab.hosts.c!.addr} ip daddr ${lab.hosts.a!.addr} counter drop`);
    const relay = lab.spawn('relay', [process.execPath, RELAY_BIN, '--host', lab.hosts.relay!.addr, '--port', '3340', '--log-level', 'warn']);
    const url = await new JsonLines(relay).waitText(/^http:\/\//, 30_000, 'the relay URL');
    const base = await mkdtemp(join(tmpdir(), 'sdnet-netns-pkarr-'));
    dirs.push(base);
    const keyFile = join(base, 'a.key');
    const keygen = await runSdnet(['keygen', '--out', keyFile]);
    expect(keygen.code).toBe(0);
    const idA = (JSON.parse((await runSdnet(['id', '--key', keyFile, '--json'])).stdout) as { id: string }).id;
    const env = cleanEnv();
    const listener = lab.spawn('a', [process.execPath, SDNET_BIN, 'pipe', 'listen', '--key', keyFile, '--relay', url, '--bind', `${lab.hosts.a!.addr}:0`], { env });
    const lout = new JsonLines(listener);
    listener.stdin!.end('to the connector\n');
    await until(async () => (/sdnet pipe connect /.test(lout.stderr) ? true : undefined), 60_000, 'the listener is online');
    // Resolve from C: the record names A's relay.
    const resolved = await until(async () => {
      const r = await lab.exec('c', [process.execPath, SDNET_BIN, 'resolve', idA, '--relay', url, '--no-mdns'], { timeoutMs: 30_000 });
      return r.code === 0 ? (JSON.parse(r.stdout) as { id: string; relayUrls: string[] }) : undefined;
    }, 60_000, 'sdnet resolve finds A');
    expect(resolved.id).toBe(idA);
    expect(resolved.relayUrls.map((u) => new URL(u).host)).toEqual([new URL(url).host]);
    // An id nobody published: exit 1.
    const missing = await lab.exec('c', [process.execPath, SDNET_BIN, 'resolve', '0'.repeat(63) + '1', '--relay', url, '--no-mdns', '--timeout', '3000'], { timeoutMs: 30_000 });
    expect([1, 2]).toContain(missing.code);
    // pipe connect by id alone.
    const connector = startSdnet(['pipe', 'connect', idA, '--relay', url, '--bind', `${lab.hosts.c!.addr}:0`], { spawnWith: (argv) => lab.spawn('c', argv, { env }) });
    connector.child.stdin?.end('to the listener\n');
    await until(async () => (lout.lines.includes('to the listener') ? true : undefined), 60_000, `A receives the connector's data (listener stderr: ${lout.stderr}; connector stderr: ${connector.out.stderr})`);
    await until(async () => (connector.out.lines.includes('to the connector') ? true : undefined), 60_000, 'C receives the listener\'s data');
  });

  it('LAN pairing with no relay: the joiner finds the initiator by its mDNS user-data', { timeout: 180_000 }, async () => {
    const lab = await NetnsLab.create(['a', 'b']);
    labs.push(lab);
    const base = await mkdtemp(join(tmpdir(), 'sdnet-netns-lanpair-'));
    dirs.push(base);
    const dir = { a: join(base, 'a'), b: join(base, 'b') };
    const env = cleanEnv({ SDNET_MDNS: '1' });
    const inNs = (h: 'a' | 'b') => ({ prefix: ['ip', 'netns', 'exec', lab.hosts[h]!.netns], env });
    const idA = (JSON.parse((await runSdnet(['init', '--json', '--data', dir.a, '--name', 'alice'])).stdout) as { id: string }).id;
    const idB = (JSON.parse((await runSdnet(['init', '--json', '--data', dir.b, '--name', 'bob'])).stdout) as { id: string }).id;
    const tp0 = performance.now();
    const invite = startSdnet(['pair', 'invite', '--json', '--data', dir.a, '--bind', `${lab.hosts.a!.addr}:0`], { spawnWith: (argv) => lab.spawn('a', argv, { env }) });
    const first = await invite.out.wait<{ code: string }>((o) => typeof o.code === 'string', 60_000, 'the code line');
    const joined = await runSdnet(['pair', 'join', ...first.code.split(' '), '--data', dir.b, '--bind', `${lab.hosts.b!.addr}:0`, '--json'], { ...inNs('b'), timeoutMs: 90_000 });
    expect(joined.code, joined.stderr).toBe(0);
    expect(JSON.parse(joined.stdout.trim().split('\n').at(-1)!)).toMatchObject({ paired: { id: idA } });
    expect(await invite.exited).toBe(0);
    const paired = await devicesJson(dir.a, inNs('a'));
    expect(paired.find((d) => d.id === idB)?.state).toBe('paired');
    const tp1 = performance.now();
    // Paired, no relay, new ports on every run: each finds the other on mDNS and dials it.
    const ups = (['a', 'b'] as const).map((h) => startUp(['--data', dir[h], '--bind', `${lab.hosts[h]!.addr}:0`], inNs(h)));
    const other = { a: idB, b: idA };
    for (const h of ['a', 'b'] as const) {
      await until(async () => ((await devicesJson(dir[h], inNs(h))).some((d) => d.id === other[h] && d.state === 'connected') ? true : undefined), 90_000, `${h} connects to its paired device found on mDNS`);
    }
    console.log(JSON.stringify({ measure: 'netns LAN pair then up→connected', pairMs: Math.round(tp1 - tp0), connectMs: Math.round(performance.now() - tp1) }));
    for (const u of ups) u.child.kill('SIGINT');
    for (const u of ups) expect(await u.exited).toBe(0);
  });
});
