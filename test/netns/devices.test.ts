/**
 * Device-layer acceptance relay-only, for real: `sdnet-relay` in one network namespace, two
 * `sdnet up` devices in two others, all on one switch whose nftables rules drop every UDP
 * packet — only TCP to the relay passes. The devices are paired through the registry fixture
 * and know each other only by id and relay URL. The shared scenario
 * (test/helpers/device-scenario.ts): messages both ways, request/response, RTT, path `relay`,
 * `disconnected` within 10 s of `kill -9` of either device and `connected` within 15 s of its
 * restart. The switch's drop counter shows the devices did try UDP.
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonLines, NetnsLab, netnsUnavailableReason } from '../helpers/netns.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { deviceScenario } from '../helpers/device-scenario.ts';
import { cleanEnv, killAll, runSdnet, startUp, type UpProcess } from '../helpers/sdnet-proc.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] devices (netns + nftables): ${reason}`);

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

describe.skipIf(reason !== undefined)('two devices relay-only in network namespaces (root)', () => {
  it('connect through the relay with all UDP dropped; messages, request/response, RTT; reconnect after kill -9 and restart of either side', { timeout: 180_000 }, async () => {
    const lab = await NetnsLab.create(['relay', 'a', 'b']);
    labs.push(lab);
    await lab.switchFilter('meta l4proto udp counter drop comment "udp"');
    const relayHost = lab.hosts.relay!.addr;
    const relay = lab.spawn('relay', [process.execPath, RELAY_BIN, '--host', relayHost, '--port', '3340', '--metrics-port', '9090', '--log-level', 'warn']);
    const relayOut = new JsonLines(relay);
    const url = await relayOut.waitText(/^http:\/\//, 15_000, 'the relay URL');

    const root = await mkdtemp(join(tmpdir(), 'sdnet-netns-devices-'));
    dirs.push(root);
    const dirA = join(root, 'alice');
    const dirB = join(root, 'bob');
    // Each knows the other only by id and relay URL.
    const { a, b } = await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', relay: url });
    const up = (host: 'a' | 'b', dataDir: string): UpProcess =>
      startUp(['--data', dataDir, '--relay', url, '--bind', `${lab.hosts[host]!.addr}:0`], { spawnWith: (argv) => lab.spawn(host, argv, { env: cleanEnv() }) });
    const hostOf = (dataDir: string): 'a' | 'b' => (dataDir === dirA ? 'a' : 'b');
    await deviceScenario({
      a: { name: 'alice', id: a.endpointId.toString(), dataDir: dirA, start: () => up('a', dirA) },
      b: { name: 'bob', id: b.endpointId.toString(), dataDir: dirB, start: () => up('b', dirB) },
      // Commands run in the device's namespace (a one-shot service would dial from there).
      run: (side, args) => runSdnet(args, { prefix: ['ip', 'netns', 'exec', lab.hosts[hostOf(side.dataDir)]!.netns], env: cleanEnv() }),
      path: 'relay',
      explain: async () => `relay stderr: ${relayOut.stderr}\nswitch: ${await lab.nftList('switch').catch((e: unknown) => String(e))}`,
    });
    // They did try direct UDP (advertised addresses), and the switch dropped it.
    const dropped = /counter packets (\d+) bytes \d+ drop comment "udp"/.exec(await lab.nftList('switch'));
    expect(Number(dropped?.[1] ?? 0)).toBeGreaterThan(0);
  });
});
