/**
 * Pairing acceptance across networks, for real: `sdnet-relay` in one network namespace, two
 * devices in two others, all on one switch whose nftables rules drop every UDP packet — only
 * TCP to the relay passes. No QR: `sdnet pair invite` shows the words, `sdnet pair join`
 * gets them typed; the joiner finds the initiator through the relay's rendezvous and the
 * whole exchange runs over the relay. Paired within the 5 s deadline; both sides'
 * `sdnet devices --json` list the other as `paired`. The switch's drop counter shows UDP was
 * tried (direct addresses are advertised) and dropped.
 *
 * The LAN case (two namespaces on a bridge, no relay, mDNS) waits for the mDNS module
 * (discovery issue); pairing's LAN path is the `PairingDiscovery` interface, exercised with
 * an in-process stand-in in test/pairing/module.test.ts.
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonLines, NetnsLab, netnsUnavailableReason } from '../helpers/netns.ts';
import { cleanEnv, killAll, runSdnet, startSdnet } from '../helpers/sdnet-proc.ts';
import { sameRendezvousOtherSecret } from '../helpers/pairing.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] pairing (netns + nftables): ${reason}`);

const RELAY_BIN = fileURLToPath(new URL('../../bin/sdnet-relay.js', import.meta.url));

const labs: NetnsLab[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await killAll();
  for (const lab of labs.splice(0)) {
    await lab.destroy();
    expect(NetnsLab.namespacesOf(lab.id)).toEqual([]);
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe.skipIf(reason !== undefined)('pairing relay-only in network namespaces (root)', () => {
  it('typed words, UDP dropped, only a relay in common: paired within 5 s, both list the other as paired; a wrong secret stores nothing', { timeout: 120_000 }, async () => {
    const lab = await NetnsLab.create(['relay', 'a', 'b']);
    labs.push(lab);
    await lab.switchFilter('meta l4proto udp counter drop comment "udp"');
    const relay = lab.spawn('relay', [process.execPath, RELAY_BIN, '--host', lab.hosts.relay!.addr, '--port', '3340', '--log-level', 'warn']);
    const relayOut = new JsonLines(relay);
    const url = await relayOut.waitText(/^http:\/\//, 15_000, 'the relay URL');

    const root = await mkdtemp(join(tmpdir(), 'sdnet-netns-pair-'));
    dirs.push(root);
    const dirA = join(root, 'alice');
    const dirB = join(root, 'bob');
    const inNs = (host: 'a' | 'b'): { prefix: string[]; env: NodeJS.ProcessEnv } => ({ prefix: ['ip', 'netns', 'exec', lab.hosts[host]!.netns], env: cleanEnv() });
    const idA = (JSON.parse((await runSdnet(['init', '--json', '--data', dirA, '--name', 'alice'])).stdout) as { id: string }).id;
    const idB = (JSON.parse((await runSdnet(['init', '--json', '--data', dirB, '--name', 'bob'])).stdout) as { id: string }).id;
    const bind = (host: 'a' | 'b'): string[] => ['--bind', `${lab.hosts[host]!.addr}:0`];

    const invite = startSdnet(['pair', 'invite', '--json', '--data', dirA, '--relay', url, ...bind('a')], { spawnWith: (argv) => lab.spawn('a', argv, { env: cleanEnv() }) });
    const first = await invite.out.wait<{ code: string; qr: string }>((o) => typeof o.code === 'string', 30_000, 'the code line');
    const words = first.code.split(' ');
    expect(words).toHaveLength(12);
    // The QR names the relay, but the joiner only gets the words.
    expect((JSON.parse(first.qr) as { relay: string }).relay).toBe(url);

    // A wrong secret first (same R): refused, nothing stored anywhere.
    const wrong = await runSdnet(['pair', 'join', ...sameRendezvousOtherSecret(first.code).split(' '), '--data', dirB, '--relay', url, ...bind('b')], { ...inNs('b'), timeoutMs: 30_000 });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('sdnet pair: wrong code (ERR_PAIRING_WRONG_CODE)\n');
    expect(JSON.parse((await runSdnet(['devices', '--json', '--data', dirB], inNs('b'))).stdout)).toEqual([]);
    expect(JSON.parse((await runSdnet(['devices', '--json', '--data', dirA], inNs('a'))).stdout)).toEqual([]);

    // The right words: the acceptance's deadline, 5 s for the join process.
    const t0 = performance.now();
    const joined = await runSdnet(['pair', 'join', ...words, '--data', dirB, '--relay', url, ...bind('b')], { ...inNs('b'), timeoutMs: 5_000 });
    const elapsed = performance.now() - t0;
    expect(joined.stderr).toBe('');
    expect(joined.code).toBe(0);
    expect(joined.stdout).toBe(`paired with alice (${idA.slice(0, 10)})\n`);
    // The deadline is the kill above (a timing is never asserted); shown for the record.
    console.log(`[pairing] join process: ${Math.round(elapsed)} ms`);
    expect(await invite.exited).toBe(0);
    expect(invite.out.objects.at(-1)).toMatchObject({ paired: { id: idB, name: 'bob' } });
    expect(invite.out.stderr).toMatch(/wrong code from [0-9a-f]{10} \(2 tries left\)/);

    const listA = JSON.parse((await runSdnet(['devices', '--json', '--data', dirA], inNs('a'))).stdout) as Array<{ id: string; name: string; state: string }>;
    const listB = JSON.parse((await runSdnet(['devices', '--json', '--data', dirB], inNs('b'))).stdout) as Array<{ id: string; name: string; state: string }>;
    expect(listA).toEqual([expect.objectContaining({ id: idB, name: 'bob', state: 'paired' })]);
    expect(listB).toEqual([expect.objectContaining({ id: idA, name: 'alice', state: 'paired' })]);

    const dropped = /counter packets (\d+) bytes \d+ drop comment "udp"/.exec(await lab.nftList('switch'));
    expect(Number(dropped?.[1] ?? 0)).toBeGreaterThan(0);
  });
});
