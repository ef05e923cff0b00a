/**
 * The device commands of shared/docs/cli.md as processes: `sdnet init` (data-dir resolution,
 * idempotence, a malformed identity → exit 2), `sdnet up` (first line, --json event lines,
 * the lock, the owner-only control socket, SIGTERM → exit 0 and cleanup), `sdnet devices`,
 * `sdnet msg`, `sdnet request`, `sdnet unpair` through the running `up` and in-process when
 * none runs, and the device-argument errors (unknown, ambiguous → exit 2).
 */
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { cleanEnv, devicesJson, freeUdpPort, killAll, runSdnet, startUp } from '../helpers/sdnet-proc.ts';
import { DeviceRegistry } from '../../src/service/device-registry.ts';
import { SecretKey } from '../../src/index.ts';

const dirs: string[] = [];
afterEach(async () => {
  await killAll();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sdnet-cli-'));
  dirs.push(d);
  return d;
}

describe('sdnet init', () => {
  it('creates the identity where --data, $SDNET_HOME, $XDG_DATA_HOME say, in that order; again prints the same', async () => {
    const root = await tempDir();
    const viaXdg = await runSdnet(['init', '--json'], { env: cleanEnv({ XDG_DATA_HOME: join(root, 'xdg') }) });
    expect(viaXdg.code).toBe(0);
    const x = JSON.parse(viaXdg.stdout) as { id: string; deviceId: string; name: string; dataDir: string; created: boolean };
    expect(x).toMatchObject({ dataDir: join(root, 'xdg', 'sdnet'), created: true });
    expect(x.id).toMatch(/^[0-9a-f]{64}$/);
    expect(x.deviceId).toMatch(/^[0-9a-f-]{36}$/);
    const viaHome = JSON.parse((await runSdnet(['init', '--json', '--name', 'box'], { env: cleanEnv({ SDNET_HOME: join(root, 'home'), XDG_DATA_HOME: join(root, 'xdg') }) })).stdout) as typeof x;
    expect(viaHome).toMatchObject({ dataDir: join(root, 'home'), name: 'box' });
    const viaFlag = JSON.parse((await runSdnet(['init', '--json', '--data', join(root, 'flag')], { env: cleanEnv({ SDNET_HOME: join(root, 'home') }) })).stdout) as typeof x;
    expect(viaFlag.dataDir).toBe(join(root, 'flag'));
    const again = await runSdnet(['init', '--data', join(root, 'home'), '--name', 'other']);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`id        ${viaHome.id}\ndeviceId  ${viaHome.deviceId}\nname      box\n`);
    expect((await stat(join(root, 'home', 'secret.key'))).mode & 0o777).toBe(0o600);
  });

  it('a malformed identity is exit 2 with one line, and the file is left alone', async () => {
    const dir = join(await tempDir(), 'd');
    await runSdnet(['init', '--data', dir]);
    await writeFile(join(dir, 'device.json'), '{"version":1,"deviceId":"x"}');
    const r = await runSdnet(['init', '--data', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^sdnet init: .*device\.json/);
    expect(await readFile(join(dir, 'device.json'), 'utf8')).toBe('{"version":1,"deviceId":"x"}');
    const bad = await runSdnet(['init', '--data', dir, '--name', '']);
    expect(bad.code).toBe(2);
  });
});

describe('sdnet up and the commands that reach it', () => {
  it('runs one service per data dir, answers commands over an owner-only socket, exits 0 on SIGTERM and cleans up', async () => {
    const root = await tempDir();
    const dirA = join(root, 'a');
    const dirB = join(root, 'b');
    const [portA, portB] = [await freeUdpPort(), await freeUdpPort()];
    const { a, b } = await pairDataDirs(dirA, dirB, { addrA: [`127.0.0.1:${portA}`], addrB: [`127.0.0.1:${portB}`] });
    const upA = startUp(['--data', dirA, '--bind', `127.0.0.1:${portA}`]);
    expect(await upA.out.waitText(/^online /, 15_000, 'the online line')).toBe(`online ${a.endpointId.toString()} -`);
    expect((await stat(join(dirA, 'sdnet.sock'))).mode & 0o777).toBe(0o600);
    expect((await stat(dirA)).mode & 0o777).toBe(0o700);
    // A second service on the same data dir is refused.
    const second = await runSdnet(['up', '--data', dirA, '--bind', '127.0.0.1:0']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^sdnet up: Another sdnet service \(pid \d+\) is running/);
    // devices through the socket (B is not running: paired, no path).
    expect(await devicesJson(dirA)).toEqual([{ id: b.endpointId.toString(), deviceId: b.deviceId, name: 'bob', state: 'paired', path: null, rttMs: null, lastSeen: null }]);
    // B comes up with --json; both reach connected.
    const upB = startUp(['--data', dirB, '--bind', `127.0.0.1:${portB}`, '--json']);
    const first = await upB.out.wait((o) => o.event === 'online', 15_000, 'the online event');
    expect(first).toMatchObject({ event: 'online', id: b.endpointId.toString(), relay: null, name: 'bob' });
    expect(upB.out.objects[0]).toBe(first);
    await upB.out.wait((o) => o.event === 'device' && o.state === 'connected', 15_000, 'B sees alice connected');
    await upA.out.waitText(/^bob connected (direct|relay)$/, 15_000, 'A prints bob connected');
    // msg and request through each running service.
    const sent = await runSdnet(['msg', '--data', dirA, 'bob', 'hello', 'bob']);
    expect(sent).toMatchObject({ code: 0, stdout: expect.stringMatching(/^delivered in [\d.]+ ms\n$/) });
    const got = await upB.out.wait((o) => o.event === 'message', 10_000, 'the message at B');
    expect(got).toMatchObject({ event: 'message', from: a.endpointId.toString(), name: 'alice', payload: 'hello bob', contentType: 'text/plain' });
    const back = await runSdnet(['msg', '--data', dirB, '--json', a.endpointId.toString().slice(0, 8), 'hi']);
    expect(JSON.parse(back.stdout)).toMatchObject({ delivered: true, rttMs: expect.any(Number) });
    await upA.out.waitText(/^message from bob: hi$/, 10_000, 'the message at A');
    const req = await runSdnet(['request', '--data', dirA, '--json', 'bob', '{"q":[1,2]}']);
    expect(JSON.parse(req.stdout)).toMatchObject({ response: { echo: { q: [1, 2] }, from: 'alice', device: { name: 'bob' } }, rttMs: expect.any(Number) });
    const table = await runSdnet(['devices', '--data', dirA]);
    expect(table.stdout).toMatch(/^NAME +ID +STATE +PATH +RTT\nbob +[0-9a-f]{10} +connected +direct +[\d.]+ ms\n$/);
    // SIGTERM: exit 0, lock and socket gone; the peer sees it leave (Goodbye).
    upB.child.kill('SIGTERM');
    expect(await upB.exited).toBe(0);
    await expect(stat(join(dirB, 'sdnet.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(join(dirB, 'sdnet.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
    await upA.out.waitText(/^bob disconnected$/, 10_000, 'A prints bob disconnected');
    // With B down, B's commands run in-process: devices from the registry, msg with a service of its own.
    expect((await devicesJson(dirB)).map((d) => [d.name, d.state])).toEqual([['alice', 'paired']]);
    const inProcess = await runSdnet(['msg', '--data', dirB, 'alice', 'from a one-shot service']);
    expect(inProcess.code).toBe(0);
    await upA.out.waitText(/^message from bob: from a one-shot service$/, 10_000, 'the one-shot message');
    // unpair through the running service: it prints the removal, the registry is empty.
    const unpaired = await runSdnet(['unpair', '--data', dirA, 'bob', '--json']);
    expect(JSON.parse(unpaired.stdout)).toEqual({ unpaired: true, id: b.endpointId.toString(), name: 'bob' });
    await upA.out.waitText(/^bob removed \(unpair\)$/, 10_000, 'A prints bob removed');
    expect(await devicesJson(dirA)).toEqual([]);
    upA.child.kill('SIGINT');
    expect(await upA.exited).toBe(0);
  });

  it('device arguments: unknown and ambiguous are exit 2; unpair in-process removes the device from the registry file', async () => {
    const root = await tempDir();
    const dirA = join(root, 'a');
    const { b } = await pairDataDirs(dirA, join(root, 'b'), { nameB: 'twin' });
    // A second device with the same name.
    const reg = await DeviceRegistry.open(dirA);
    const other = SecretKey.generate().public();
    reg.pair({ id: other, info: { ...b.info, deviceId: crypto.randomUUID() }, linkKey: new Uint8Array(32) });
    await reg.close();
    const ambiguous = await runSdnet(['msg', '--data', dirA, 'twin', 'x']);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toMatch(/^sdnet msg: "twin" matches 2 devices/);
    const unknown = await runSdnet(['unpair', '--data', dirA, 'nobody']);
    expect(unknown).toMatchObject({ code: 2, stderr: expect.stringMatching(/^sdnet unpair: No known device is "nobody"/) });
    const done = await runSdnet(['unpair', '--data', dirA, other.toString().slice(0, 12)]);
    expect(done).toMatchObject({ code: 0, stdout: `unpaired twin (${other.toString().slice(0, 10)})\n` });
    expect((await devicesJson(dirA)).map((d) => d.id)).toEqual([b.endpointId.toString()]);
    const file = JSON.parse(await readFile(join(dirA, 'devices.json'), 'utf8')) as { devices: { endpointId: string }[] };
    expect(file.devices.map((d) => d.endpointId)).toEqual([b.endpointId.toString()]);
    // msg to a device that is not running, in-process: exit 1, one line.
    const unreachable = await runSdnet(['msg', '--data', dirA, '--timeout', '2000', 'twin', 'anyone?']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.trim().split('\n')).toHaveLength(1);
    expect(unreachable.stderr).toMatch(/^sdnet msg: (Cannot reach|No address is known)/);
    // devices in an empty data dir: "run sdnet init".
    const none = await runSdnet(['devices', '--data', join(root, 'empty')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/sdnet init/);
  });

  it('a device with nothing paired lists no devices (plain and --json)', async () => {
    const dir = join(await tempDir(), 'x');
    await runSdnet(['init', '--data', dir]);
    expect(await devicesJson(dir)).toEqual([]);
    expect((await runSdnet(['devices', '--data', dir])).stdout).toBe('no devices\n');
  });
});
