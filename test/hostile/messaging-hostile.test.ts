/**
 * A hostile paired peer against the device service (issue "Device layer", acceptance): on
 * `sdnet/messaging/1` it sends an oversized length prefix, invalid JSON, an unknown message
 * type, and opens 10,000 streams (valid pings, garbage, empty streams, half a header left
 * hanging). Each bad stream is reset with its stable stream code and logged; the hostile
 * connection itself stays usable; an honest paired device exchanging
 * messages and requests all the while is served throughout; and after the hostile peer is
 * gone the heap is back to its baseline.
 *
 * The hostile peer is a raw endpoint holding a key the service has as paired (a peer that
 * was paired and turned bad — an unpaired one never gets past the handshake gate).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint, EndpointAddr, SecretKey, StreamResetError, type Connection } from '../../src/index.ts';
import { CloseCode, FrameReader, MESSAGING_ALPN, StreamCode, encodeFrame, encodeMessage, decodeMessage } from '../../src/protocols/index.ts';
import { Core } from '../../src/service/index.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { failOnEscapes, until } from '../helpers/relay-test-utils.ts';
import { freeUdpPort } from '../helpers/sdnet-proc.ts';

failOnEscapes();

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

function heap(gc: (() => void) | undefined): number {
  for (let i = 0; i < 4; i++) gc?.();
  return process.memoryUsage().heapUsed;
}

type Outcome = 'pong' | `reset:${number}` | 'finished' | 'other';

/** One hostile stream: write `bytes` (and finish unless `hang`), then see how it ends. */
async function hostileStream(conn: Connection, bytes: Uint8Array, hang = false): Promise<Outcome> {
  const { readable, writable } = await conn.openBi();
  const w = writable.getWriter();
  w.write(bytes).catch(() => undefined);
  if (!hang) w.close().catch(() => undefined);
  const reader = new FrameReader(readable);
  try {
    const frame = await reader.readFrame(MiB);
    if (frame === undefined) return 'finished';
    const m = decodeMessage(frame);
    await reader.readFrame(MiB).catch(() => undefined);
    return 'Pong' in m ? 'pong' : 'other';
  } catch (err) {
    if (err instanceof StreamResetError) return `reset:${err.streamCode}`;
    return 'other';
  }
}

const te = new TextEncoder();
const ping = (): Uint8Array => encodeFrame(encodeMessage({ Ping: { timestamp: Date.now(), payload: null } }));

describe('a hostile paired peer on sdnet/messaging/1', () => {
  it('oversized prefix, invalid JSON, unknown type and 10,000 streams: each handled, the honest device served, heap back to baseline', { timeout: 180_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'sdnet-hostile-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dirA = join(root, 'a');
    const portA = await freeUdpPort();
    await pairDataDirs(dirA, join(root, 'honest'), { nameA: 'service', nameB: 'honest', addrA: [`127.0.0.1:${portA}`] });
    await pairDataDirs(dirA, join(root, 'hostile'), { nameA: 'service', nameB: 'hostile', addrA: [`127.0.0.1:${portA}`] });
    const warnings = new Map<string, number>();
    const service = await Core.init({
      dataDir: dirA,
      bind: [`127.0.0.1:${portA}`],
      log: (e) => {
        if (e.level === 'warn') warnings.set(String(e.code), (warnings.get(String(e.code)) ?? 0) + 1);
      },
    });
    cleanups.push(() => service.shutdown());
    const honest = await Core.init({ dataDir: join(root, 'honest'), bind: ['127.0.0.1:0'] });
    cleanups.push(() => honest.shutdown());
    honest.networking.onRequest(({ payload }) => payload);
    service.networking.onRequest(({ payload }) => payload);
    await until(() => service.networking.registry.get(honest.networking.identity.endpointId)?.state === 'connected', 'the honest device connected', 15_000);

    const hostileKey = SecretKey.fromString((await readFile(join(root, 'hostile', 'secret.key'), 'utf8')).trim());
    const hostile = await Endpoint.bind({ secretKey: hostileKey, bindAddr: ['127.0.0.1:0'] });
    let hostileOpen = true;
    cleanups.push(() => hostileOpen && hostile.close({ graceMs: 50 }));
    const addr = EndpointAddr.from({ id: service.networking.identity.endpointId, directAddresses: [`127.0.0.1:${portA}`] });
    const conn = await hostile.connect(addr, MESSAGING_ALPN);
    // It answers the service's health-check pings (otherwise the service rightly drops it as
    // dead within seconds): a live peer that is hostile, not a dead one.
    void (async () => {
      for (;;) {
        const { readable, writable } = await conn.acceptBi();
        void (async () => {
          const frame = await new FrameReader(readable).readFrame(MiB);
          const m = frame && decodeMessage(frame);
          const w = writable.getWriter();
          if (m && 'Ping' in m) await w.write(encodeFrame(encodeMessage({ Pong: { timestamp: Date.now(), original_timestamp: m.Ping.timestamp } })));
          await w.close();
        })().catch(() => undefined);
      }
    })().catch(() => undefined);

    // Warm up both paths, then the baseline.
    for (let i = 0; i < 50; i++) expect(await hostileStream(conn, ping())).toBe('pong');
    await honest.networking.sendMessage('service', 'warm-up');
    const gc = getGc();
    const baseline = heap(gc);

    // The three single abuses, each on its own stream, each with its own code.
    expect(await hostileStream(conn, new Uint8Array([0xff, 0xff, 0xff, 0xf0]))).toBe(`reset:${StreamCode.FRAME_TOO_LARGE}`);
    expect(await hostileStream(conn, encodeFrame(te.encode('{"Ping": not json')))).toBe(`reset:${StreamCode.MALFORMED_MESSAGE}`);
    expect(await hostileStream(conn, encodeFrame(te.encode('{"Library":{"type":"discovery_request","request_id":"x"}}')))).toBe(`reset:${StreamCode.UNKNOWN_MESSAGE}`);
    expect(await hostileStream(conn, encodeFrame(te.encode('{"Pong":{"timestamp":1,"original_timestamp":1}}')))).toBe(`reset:${StreamCode.MALFORMED_MESSAGE}`);

    // 10,000 streams, 100 at a time, while the honest device keeps talking.
    const kinds = [
      () => hostileStream(conn, ping()),
      () => hostileStream(conn, encodeFrame(te.encode('garbage'))),
      () => hostileStream(conn, new Uint8Array(0)),
      () => hostileStream(conn, new Uint8Array([0x7f, 0xff, 0xff, 0xff])),
    ];
    const counts = new Map<Outcome, number>();
    let honestOk = 0;
    let attacking = true;
    const honestLoop = (async () => {
      while (attacking) {
        await honest.networking.sendMessage('service', { n: honestOk });
        expect(await honest.networking.request('service', honestOk)).toBe(honestOk);
        honestOk++;
      }
    })();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 10_000) {
        const i = next++;
        const o = await kinds[i % kinds.length]!();
        counts.set(o, (counts.get(o) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 100 }, worker));
    attacking = false;
    await honestLoop;
    console.log(`hostile streams: ${JSON.stringify(Object.fromEntries(counts))}; honest exchanges during the attack: ${honestOk}; warnings ${JSON.stringify(Object.fromEntries(warnings))}`);
    expect(counts.get('pong')).toBe(2500);
    expect(counts.get(`reset:${StreamCode.MALFORMED_MESSAGE}`)).toBe(2500);
    expect(counts.get('finished')).toBe(2500);
    expect(counts.get(`reset:${StreamCode.FRAME_TOO_LARGE}`)).toBe(2500);
    expect(honestOk).toBeGreaterThan(0);
    // Every bad stream was logged with its code.
    expect(warnings.get('FRAME_TOO_LARGE')).toBe(2501);
    expect(warnings.get('MALFORMED_MESSAGE')).toBe(2502);
    expect(warnings.get('UNKNOWN_MESSAGE')).toBe(1);
    // The hostile connection itself still works (a bad stream costs only that stream).
    expect(conn.isClosed).toBe(false);
    expect(await hostileStream(conn, ping())).toBe('pong');

    // 50 streams left hanging on half a header (each holds a handler slot until the 30 s idle
    // timeout, tested in test/service/protocol-registry.test.ts): the same connection's other
    // streams and the honest device are still served meanwhile.
    const hanging = Array.from({ length: 50 }, () => hostileStream(conn, new Uint8Array([0, 0]), true));
    await until(() => service.networking.connections(hostileKey.public()).length === 1, 'tracked');
    expect(await hostileStream(conn, ping())).toBe('pong');
    expect(await honest.networking.request('service', 'during hang')).toBe('during hang');
    hostileOpen = false;
    await hostile.close({ graceMs: 50 });
    await Promise.all(hanging);
    await until(() => service.networking.connections(hostileKey.public()).length === 0, 'the hostile connection gone', 10_000);
    expect(await honest.networking.sendMessage('service', 'after')).toMatchObject({ messageId: expect.any(String) });

    const after = heap(gc);
    console.log(`heap ${(baseline / MiB).toFixed(1)} MiB → ${(after / MiB).toFixed(1)} MiB${gc ? '' : ' (no gc available)'}`);
    if (gc) expect(after - baseline).toBeLessThan(8 * MiB);
  });
});

describe('a paired peer that stops answering', () => {
  it('is closed with HEALTH_CHECK_FAILED after the missed pings and the device becomes disconnected', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sdnet-hostile-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dirA = join(root, 'a');
    const portA = await freeUdpPort();
    await pairDataDirs(dirA, join(root, 'mute'), { nameB: 'mute', addrA: [`127.0.0.1:${portA}`] });
    const service = await Core.init({ dataDir: dirA, bind: [`127.0.0.1:${portA}`], timing: { healthIntervalMs: 200, healthTimeoutMs: 300, healthMaxMisses: 2, reconnectMinMs: 60_000 } });
    cleanups.push(() => service.shutdown());
    const key = SecretKey.fromString((await readFile(join(root, 'mute', 'secret.key'), 'utf8')).trim());
    const mute = await Endpoint.bind({ secretKey: key, bindAddr: ['127.0.0.1:0'] });
    cleanups.push(() => mute.close({ graceMs: 50 }));
    const states: string[] = [];
    service.networking.on('device-state-changed', (e) => states.push(e.to));
    // It connects and then never accepts a stream (a hung peer).
    const conn = await mute.connect(EndpointAddr.from({ id: service.networking.identity.endpointId, directAddresses: [`127.0.0.1:${portA}`] }), MESSAGING_ALPN);
    const error = await conn.closed;
    expect(error).toMatchObject({ remote: true, applicationCode: CloseCode.HEALTH_CHECK_FAILED });
    await until(() => states.includes('disconnected'), 'disconnected');
    expect(states).toEqual(['connected', 'disconnected']);
  });
});
