/**
 * ProtocolRegistry over real sockets: the pairing gate (an unpaired id reaches only
 * `allowUnpaired` protocols, refused with NOT_PAIRED before the handler runs), streams served
 * concurrently up to the protocol's limit, a frame over the limit resetting only its stream,
 * the idle timeout, registration sealed once the router runs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint, EndpointAddr, StreamResetError, type Connection, type PublicKey } from '../../src/index.ts';
import { CloseCode, FrameReader, StreamCode, encodeFrame } from '../../src/protocols/index.ts';
import { ProtocolRegistry, type ConnectionContext, type DeviceProtocol } from '../../src/service/protocol-registry.ts';
import { Logger, type LogEntry } from '../../src/util/log.ts';
import { failOnEscapes, until } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  client: Endpoint;
  paired: Endpoint;
  addr: EndpointAddr;
  logs: LogEntry[];
}

/** A server with the given protocols; `paired` is the one id it treats as paired. */
async function setup(protocols: DeviceProtocol[]): Promise<Setup & { registry: ProtocolRegistry }> {
  const server = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'] });
  const client = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'] });
  const paired = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'] });
  const logs: LogEntry[] = [];
  const log = new Logger((e) => logs.push(e), 'test');
  const registry = new ProtocolRegistry();
  for (const p of protocols) registry.register(p);
  const stop = new AbortController();
  const router = registry.buildRouter(server, {
    isPaired: (id: PublicKey) => id.equals(paired.id),
    sink: async (connection, registered) => {
      const ctx: ConnectionContext = { connection, remoteId: connection.remoteId, alpn: connection.alpn, side: connection.side, limits: registered.limits, signal: stop.signal, log };
      registered.protocol.connectionOpened?.(ctx);
      await ProtocolRegistry.serve(registered, ctx);
    },
  });
  cleanups.push(
    () => client.close({ graceMs: 50 }),
    () => paired.close({ graceMs: 50 }),
    async () => {
      stop.abort();
      await router.shutdown();
    },
  );
  return { registry, client, paired, logs, addr: EndpointAddr.from({ id: server.id, directAddresses: server.boundSockets }) };
}

/** Write frames on a new stream, finish, and read the reply frames (or the reset). */
async function exchange(conn: Connection, frames: Uint8Array[], max = 1 << 20): Promise<Uint8Array[] | StreamResetError> {
  const { readable, writable } = await conn.openBi();
  const w = writable.getWriter();
  for (const f of frames) await w.write(f);
  await w.close().catch(() => undefined);
  const r = new FrameReader(readable);
  const out: Uint8Array[] = [];
  try {
    for (let f = await r.readFrame(max); f !== undefined; f = await r.readFrame(max)) out.push(f);
  } catch (err) {
    if (err instanceof StreamResetError) return err;
    throw err;
  }
  return out;
}

const echo = (alpn: string, extra: Partial<DeviceProtocol> = {}): DeviceProtocol & { calls: number } => {
  const p = {
    alpn,
    calls: 0,
    async handleStream(stream: Parameters<DeviceProtocol['handleStream']>[0]) {
      p.calls++;
      for (let f = await stream.read(); f !== undefined; f = await stream.read()) await stream.write(f);
      await stream.finish();
    },
    ...extra,
  };
  return p;
};

describe('ProtocolRegistry', () => {
  it('an unpaired peer is refused with NOT_PAIRED on a paired-only ALPN before the handler runs, and reaches the open one', async () => {
    const messaging = echo('m/1');
    const pairing = echo('p/1', { allowUnpaired: true });
    const s = await setup([messaging, pairing]);
    const refused = await s.client.connect(s.addr, 'm/1');
    expect(await refused.closed).toMatchObject({ kind: 'application', remote: true, applicationCode: CloseCode.NOT_PAIRED });
    expect(messaging.calls).toBe(0);
    const open = await s.client.connect(s.addr, 'p/1');
    expect(await exchange(open, [encodeFrame(new Uint8Array([1]))])).toEqual([new Uint8Array([1])]);
    const ok = await s.paired.connect(s.addr, 'm/1');
    expect(await exchange(ok, [encodeFrame(new Uint8Array([2]))])).toEqual([new Uint8Array([2])]);
    expect(messaging.calls).toBe(1);
    expect(() => s.registry.register(echo('late/1'))).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL_REGISTRY_SEALED' }));
  });

  it('serves streams concurrently up to maxConcurrentStreams; the rest wait, none is lost', async () => {
    let active = 0;
    let peak = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow: DeviceProtocol = {
      alpn: 's/1',
      limits: { maxConcurrentStreams: 3 },
      async handleStream(stream) {
        active++;
        peak = Math.max(peak, active);
        const f = await stream.read();
        await gate;
        await stream.write(f!);
        await stream.finish();
        active--;
      },
    };
    const s = await setup([slow]);
    const conn = await s.paired.connect(s.addr, 's/1');
    const all = Array.from({ length: 8 }, (_, i) => exchange(conn, [encodeFrame(new Uint8Array([i]))]));
    await until(() => active === 3, 'three streams in the handler');
    expect(peak).toBe(3);
    release();
    const results = await Promise.all(all);
    expect(results).toEqual(Array.from({ length: 8 }, (_, i) => [new Uint8Array([i])]));
    expect(peak).toBe(3);
  });

  it('a frame over the limit resets that stream with FRAME_TOO_LARGE and is logged; other streams are served', async () => {
    const s = await setup([echo('e/1', { limits: { maxMessageBytes: 16 } })]);
    const conn = await s.paired.connect(s.addr, 'e/1');
    const header = new Uint8Array([0x7f, 0xff, 0xff, 0xff]);
    const bad = await exchange(conn, [header]);
    expect(bad).toBeInstanceOf(StreamResetError);
    expect((bad as StreamResetError).streamCode).toBe(StreamCode.FRAME_TOO_LARGE);
    expect(await exchange(conn, [encodeFrame(new Uint8Array(16))])).toEqual([new Uint8Array(16)]);
    expect(s.logs.some((l) => l.level === 'warn' && l.code === 'FRAME_TOO_LARGE')).toBe(true);
    expect(conn.isClosed).toBe(false);
  });

  it('resets a stream left silent past the idle timeout', async () => {
    const s = await setup([echo('i/1', { limits: { idleTimeoutMs: 200 } })]);
    const conn = await s.paired.connect(s.addr, 'i/1');
    const { readable, writable } = await conn.openBi();
    const w = writable.getWriter();
    await w.write(new Uint8Array([0, 0])); // half a header, then silence
    const reader = readable.getReader();
    const err = await reader.read().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StreamResetError);
    expect((err as StreamResetError).streamCode).toBe(StreamCode.IDLE_TIMEOUT);
  });

  it('refuses duplicate ALPNs and bad limits', () => {
    const r = new ProtocolRegistry();
    r.register(echo('a/1'));
    expect(() => r.register(echo('a/1'))).toThrow(expect.objectContaining({ code: 'ERR_ALPN_REGISTERED' }));
    expect(() => r.register(echo('b/1', { limits: { maxConcurrentStreams: 0 } }))).toThrow(RangeError);
  });
});
