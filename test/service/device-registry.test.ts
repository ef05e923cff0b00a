/**
 * DeviceRegistry: the transition table checked transition by transition (every event from
 * every state: the listed target, or ERR_DEVICE_TRANSITION with nothing changed), the
 * events emitted, persistence (paired devices only, loaded as paired; write-temp → rename),
 * a corrupt file kept aside and reported, link keys never shown, and resolving what a user
 * types.
 */
import { mkdtemp, readFile, readdir, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { EndpointAddr, SecretKey, type PublicKey } from '../../src/index.ts';
import { DEVICE_STATES, DEVICE_TRANSITIONS, DeviceRegistry, nextState, type DeviceEvent, type DeviceState, type DeviceStateChange } from '../../src/service/device-registry.ts';
import type { DeviceInfo } from '../../src/service/identity.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sdnet-registry-'));
  dirs.push(d);
  return d;
}

const info = (name: string): DeviceInfo => ({ deviceId: crypto.randomUUID(), name, os: 'linux', osVersion: '6.1', kind: 'desktop', appVersion: '0.1.0' });
const linkKey = (): Uint8Array => crypto.getRandomValues(new Uint8Array(32));
const newId = (): PublicKey => SecretKey.generate().public();

/** Put a fresh device into `state` by legal steps. */
function reach(reg: DeviceRegistry, state: DeviceState | 'none'): PublicKey {
  const id = newId();
  if (state === 'none') return id;
  if (state === 'discovered') reg.discover(EndpointAddr.from({ id, directAddresses: ['10.0.0.1:5'] }));
  else if (state === 'pairing') reg.startPairing(id);
  else {
    reg.pair({ id, info: info('d'), linkKey: linkKey() });
    if (state === 'connected' || state === 'disconnected') reg.markConnected(id, { path: 'direct', rttMs: 1, bytesSent: 0, bytesReceived: 0 });
    if (state === 'disconnected') reg.markDisconnected(id);
  }
  expect(reg.state(id)).toBe(state);
  return id;
}

/** Apply `event` to `id` through the public API. */
function fire(reg: DeviceRegistry, id: PublicKey, event: DeviceEvent): void {
  switch (event) {
    case 'discover':
      // discover() on a known non-discovered device only refreshes its address: use the
      // transition itself to test the table, as the event loop does for unknown devices.
      if (reg.state(id) !== 'none' && reg.state(id) !== 'discovered') throw Object.assign(new Error('refresh'), { code: 'REFRESH' });
      reg.discover(EndpointAddr.from({ id, directAddresses: ['10.0.0.2:5'] }));
      return;
    case 'start-pairing':
      reg.startPairing(id);
      return;
    case 'fail-pairing':
      reg.failPairing(id);
      return;
    case 'pair':
      reg.pair({ id, info: info('p'), linkKey: linkKey() });
      return;
    case 'connect':
      reg.markConnected(id, { path: 'relay', rttMs: 3, bytesSent: 1, bytesReceived: 2 });
      return;
    case 'disconnect':
      reg.markDisconnected(id);
      return;
    case 'unpair':
      reg.unpair(id);
      return;
    case 'expire':
      reg.expire(id);
      return;
  }
}

describe('transition table', () => {
  const states: (DeviceState | 'none')[] = ['none', ...DEVICE_STATES];
  for (const event of Object.keys(DEVICE_TRANSITIONS) as DeviceEvent[]) {
    for (const from of states) {
      const to = nextState(from, event);
      it(`${event} from ${from} → ${to ?? 'ERR_DEVICE_TRANSITION'}`, () => {
        const reg = DeviceRegistry.inMemory();
        const id = reach(reg, from);
        const changes: DeviceStateChange[] = [];
        reg.on('state-changed', (c) => changes.push(c));
        const before = reg.get(id);
        if (event === 'discover' && from !== 'none' && from !== 'discovered') {
          // A paired/pairing device heard again: its address is refreshed, its state kept.
          reg.discover(EndpointAddr.from({ id, directAddresses: ['10.9.9.9:9'] }));
          expect(reg.state(id)).toBe(from);
          expect(changes).toEqual([]);
          expect(reg.get(id)!.addr.directAddresses).toEqual(['10.9.9.9:9']);
          return;
        }
        if (to === undefined) {
          expect(() => fire(reg, id, event)).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_TRANSITION' }));
          // Nothing changed: same snapshot, no event.
          expect(reg.get(id)).toEqual(before);
          expect(changes).toEqual([]);
          return;
        }
        fire(reg, id, event);
        expect(reg.state(id)).toBe(to === 'removed' ? 'none' : to);
        expect(changes).toHaveLength(1);
        expect(changes[0]).toMatchObject({ from, to, event });
        expect(changes[0]!.device.endpointId).toBe(id.toString());
      });
    }
  }

  it('isPaired holds exactly in paired, connected and disconnected', () => {
    const reg = DeviceRegistry.inMemory();
    for (const s of ['none', ...DEVICE_STATES] as const) expect(reg.isPaired(reach(reg, s))).toBe(['paired', 'connected', 'disconnected'].includes(s));
  });
});

describe('persistence', () => {
  it('writes paired devices only, atomically, 0600; they load as paired with their link keys', async () => {
    const dir = await tempDir();
    const reg = await DeviceRegistry.open(dir);
    const a = newId();
    const b = newId();
    const keyA = linkKey();
    reg.pair({ id: a, info: info('alpha'), linkKey: keyA, addr: EndpointAddr.from({ id: a, relayUrls: ['https://relay.example/'], directAddresses: ['192.0.2.1:4433'] }) });
    reg.pair({ id: b, info: info('beta'), linkKey: linkKey() });
    reg.markConnected(a, { path: 'direct', rttMs: 2, bytesSent: 0, bytesReceived: 0 });
    reg.discover(EndpointAddr.from({ id: newId(), directAddresses: ['10.0.0.3:1'] }));
    reg.startPairing(newId());
    await reg.close();
    const path = DeviceRegistry.pathIn(dir);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
    const file = JSON.parse(await readFile(path, 'utf8')) as { version: number; generation: number; devices: unknown[] };
    expect(file.version).toBe(1);
    expect(file.devices).toHaveLength(2);
    const again = await DeviceRegistry.open(dir);
    expect(again.devices().map((d) => [d.name, d.state])).toEqual([
      ['alpha', 'paired'],
      ['beta', 'paired'],
    ]);
    expect(again.linkKey(a)).toEqual(keyA);
    expect(again.get(a)!.addr).toEqual({ relayUrls: ['https://relay.example/'], directAddresses: ['192.0.2.1:4433'] });
    expect(again.problems).toEqual([]);
    again.unpair(b);
    await again.flush();
    expect((await DeviceRegistry.open(dir)).devices().map((d) => d.name)).toEqual(['alpha']);
  });

  for (const [what, contents] of [
    ['not JSON', '{"version":1,"generation":3,"devi'],
    ['a bad link key', JSON.stringify({ version: 1, generation: 1, devices: [{ endpointId: SecretKey.generate().public().toString(), info: info('x'), pairedAt: 1, lastSeen: null, addr: { relayUrls: [], directAddresses: [] }, linkKey: 'AAAA' }] })],
    ['a bad endpoint id', JSON.stringify({ version: 1, generation: 1, devices: [{ endpointId: 'zz', info: info('x'), pairedAt: 1, lastSeen: null, addr: { relayUrls: [], directAddresses: [] }, linkKey: Buffer.alloc(32).toString('base64') }] })],
    ['an unknown version', JSON.stringify({ version: 9, generation: 1, devices: [] })],
  ] as const) {
    it(`a corrupt file (${what}) is kept aside and reported, never silently replaced`, async () => {
      const dir = await tempDir();
      await writeFile(DeviceRegistry.pathIn(dir), contents, { mode: 0o600 });
      const reg = await DeviceRegistry.open(dir);
      expect(reg.devices()).toEqual([]);
      expect(reg.problems).toHaveLength(1);
      const problem = reg.problems[0]!;
      expect(problem.code).toBe('ERR_REGISTRY_CORRUPT');
      expect(await readFile(problem.keptAs!, 'utf8')).toBe(contents);
      // The original bytes survive even after the registry writes a new file.
      reg.pair({ id: newId(), info: info('new'), linkKey: linkKey() });
      await reg.close();
      expect(await readFile(problem.keptAs!, 'utf8')).toBe(contents);
    });
  }

  it('removes temporary files a crash left behind', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'devices.json.tmp-123-abcd'), 'half a file');
    await DeviceRegistry.open(dir);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('secrets and lookups', () => {
  it('link keys appear in no snapshot, event, JSON or inspect output', () => {
    const reg = DeviceRegistry.inMemory();
    const key = linkKey();
    const keyB64 = Buffer.from(key).toString('base64');
    const keyHex = Buffer.from(key).toString('hex');
    const seen: string[] = [];
    reg.on('state-changed', (c) => seen.push(JSON.stringify(c)));
    reg.on('updated', (c) => seen.push(JSON.stringify(c)));
    const id = newId();
    reg.pair({ id, info: info('secretive'), linkKey: key });
    reg.markConnected(id, { path: 'direct', rttMs: 1, bytesSent: 0, bytesReceived: 0 });
    reg.updateConnection(id, { rttMs: 2 });
    seen.push(JSON.stringify(reg), inspect(reg, { depth: 10 }), JSON.stringify(reg.devices()), inspect(reg.devices(), { depth: 10 }));
    for (const text of seen) {
      expect(text).not.toContain(keyB64);
      expect(text).not.toContain(keyHex);
      expect(text).not.toMatch(/linkKey/);
    }
    expect(reg.linkKey(id)).toEqual(key);
  });

  it('resolves a name, a device id, a full id (hex, z-base-32) or a unique hex prefix ≥ 8; unknown and ambiguous are errors', () => {
    const reg = DeviceRegistry.inMemory();
    const a = newId();
    const ia = info('laptop');
    reg.pair({ id: a, info: ia, linkKey: linkKey() });
    const b = newId();
    reg.pair({ id: b, info: info('phone'), linkKey: linkKey() });
    const c = newId();
    reg.pair({ id: c, info: info('phone'), linkKey: linkKey() });
    expect(reg.resolve('laptop').endpointId).toBe(a.toString());
    expect(reg.resolve('LAPTOP').endpointId).toBe(a.toString());
    expect(reg.resolve(ia.deviceId).endpointId).toBe(a.toString());
    expect(reg.resolve(a.toString()).endpointId).toBe(a.toString());
    expect(reg.resolve(a.toZ32()).endpointId).toBe(a.toString());
    expect(reg.resolve(a.toString().slice(0, 8)).endpointId).toBe(a.toString());
    expect(() => reg.resolve(a.toString().slice(0, 7))).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_UNKNOWN' }));
    expect(() => reg.resolve('phone')).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_AMBIGUOUS' }));
    expect(() => reg.resolve('tablet')).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_UNKNOWN' }));
    expect(() => reg.resolve(newId().toString())).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_UNKNOWN' }));
  });

  it('rejects a link key that is not 32 bytes and malformed device info', () => {
    const reg = DeviceRegistry.inMemory();
    expect(() => reg.pair({ id: newId(), info: info('x'), linkKey: new Uint8Array(16) })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => reg.pair({ id: newId(), info: { ...info('x'), deviceId: 'not-a-uuid' }, linkKey: linkKey() })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });
});
