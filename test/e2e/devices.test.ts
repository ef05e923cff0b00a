/**
 * Device-layer acceptance on loopback (issue "Device layer"): two `sdnet up` processes in
 * separate data dirs, paired through the registry fixture, each bound to a fixed loopback
 * port (so a restarted device is found where it was): messages both ways, request/response,
 * RTT, `paired → connected`, `disconnected` within 10 s of `kill -9` of either, `connected`
 * again within 15 s of its restart (test/helpers/device-scenario.ts).
 *
 * Then an unpaired peer dialling `sdnet/messaging/1` of a running `up`: refused with the
 * stable code NOT_PAIRED before any handler runs; the registry file and the device list are
 * unchanged.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint, EndpointAddr } from '../../src/index.ts';
import { CloseCode, MESSAGING_ALPN } from '../../src/protocols/index.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { deviceScenario } from '../helpers/device-scenario.ts';
import { devicesJson, freeUdpPort, killAll, runSdnet, startUp } from '../helpers/sdnet-proc.ts';

const dirs: string[] = [];
const endpoints: Endpoint[] = [];
afterEach(async () => {
  await killAll();
  for (const e of endpoints.splice(0)) await e.close({ graceMs: 50 });
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sdnet-e2e-'));
  dirs.push(d);
  return d;
}

describe('two devices on loopback, as processes', () => {
  it('connect, message both ways, request/response, RTT; reconnect after kill -9 and restart of either side', { timeout: 150_000 }, async () => {
    const root = await tempDir();
    const dirA = join(root, 'alice');
    const dirB = join(root, 'bob');
    const portA = await freeUdpPort();
    const portB = await freeUdpPort();
    const { a, b } = await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', addrA: [`127.0.0.1:${portA}`], addrB: [`127.0.0.1:${portB}`] });
    await deviceScenario({
      a: { name: 'alice', id: a.endpointId.toString(), dataDir: dirA, start: () => startUp(['--data', dirA, '--bind', `127.0.0.1:${portA}`]) },
      b: { name: 'bob', id: b.endpointId.toString(), dataDir: dirB, start: () => startUp(['--data', dirB, '--bind', `127.0.0.1:${portB}`]) },
      run: (_side, args) => runSdnet(args),
      path: 'direct',
    });
  });
});

describe('an unpaired peer', () => {
  it('dialling sdnet/messaging/1 is refused with NOT_PAIRED; the registry is unchanged', async () => {
    const root = await tempDir();
    const dirA = join(root, 'alice');
    const port = await freeUdpPort();
    await pairDataDirs(dirA, join(root, 'bob'));
    const up = startUp(['--data', dirA, '--bind', `127.0.0.1:${port}`, '--json']);
    const online = await up.out.wait<{ id: string }>((o) => o.event === 'online', 20_000, 'online');
    const fileBefore = await readFile(join(dirA, 'devices.json'));
    const listBefore = await devicesJson(dirA);
    const stranger = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'] });
    endpoints.push(stranger);
    const conn = await stranger.connect(EndpointAddr.from({ id: online.id, directAddresses: [`127.0.0.1:${port}`] }), MESSAGING_ALPN);
    // Whatever it tries, the connection is closed with the stable code before a handler reads a byte.
    const { writable } = await conn.openBi().catch(() => ({ writable: undefined }));
    void writable?.getWriter().write(new TextEncoder().encode('\x00\x00\x00\x0b{"Ping":{}}')).catch(() => undefined);
    const error = await conn.closed;
    expect(error).toMatchObject({ kind: 'application', remote: true, applicationCode: CloseCode.NOT_PAIRED, reason: 'not paired' });
    expect(Buffer.compare(await readFile(join(dirA, 'devices.json')), fileBefore)).toBe(0);
    expect(await devicesJson(dirA)).toEqual(listBefore);
    expect(up.out.objects.filter((o) => o.event === 'device' || o.event === 'message')).toEqual([]);
    up.child.kill('SIGTERM');
    expect(await up.exited).toBe(0);
  });
});
