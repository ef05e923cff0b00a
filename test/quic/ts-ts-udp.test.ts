import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Endpoint } from '../../src/endpoint/index.ts';

async function readAll(r: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of r) {
    parts.push(c);
    n += c.length;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('TS ↔ TS over real UDP', () => {
  it('echoes and transfers 8 MiB', async () => {
    const server = await Endpoint.bind({ alpns: ['test/1'], bindAddr: '127.0.0.1:0' });
    const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
    const served = (async () => {
      for await (const incoming of server.accept()) {
        const conn = await incoming.accept();
        const bi = await conn.acceptBi();
        const data = await readAll(bi.readable);
        const w = bi.writable.getWriter();
        await w.write(createHash('sha256').update(data).digest());
        await w.close();
        return data.length;
      }
      return 0;
    })();
    const conn = await client.connect(server.addr(), 'test/1');
    expect(conn.remoteId.equals(server.id)).toBe(true);
    const bi = await conn.openBi();
    const payload = new Uint8Array(8 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    const t0 = performance.now();
    const w = bi.writable.getWriter();
    for (let off = 0; off < payload.length; off += 65536) await w.write(payload.subarray(off, off + 65536));
    await w.close();
    const digest = await readAll(bi.readable);
    const ms = performance.now() - t0;
    expect(Buffer.from(digest).toString('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    expect(await served).toBe(payload.length);
    console.log('8 MiB in', ms.toFixed(0), 'ms', (payload.length / 1e6 / (ms / 1000)).toFixed(1), 'MB/s', conn.stats());
    conn.close(0, 'done');
    await client.close();
    await server.close();
  });
});

describe('a close right after connect', () => {
  // The driver lets the application react to events before it sends the rest of a pass. A
  // close right after 'connected' must still find the Finished gone (the driver sends
  // handshake flights first; the core holds a close back behind an unsent flight, see
  // test/sim/basic.test.ts): the server sees our application close, not an aborted handshake.
  it('reaches the server as our application close, with its code and reason', async () => {
    const server = await Endpoint.bind({ alpns: ['test/1'], bindAddr: '127.0.0.1:0' });
    const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
    try {
      const served = (async () => {
        for await (const incoming of server.accept()) {
          const conn = await incoming.accept();
          return await conn.closed;
        }
        throw new Error('no connection arrived');
      })();
      const conn = await client.connect(server.addr(), 'test/1');
      conn.close(4321, 'right away');
      const error = await served;
      expect(error).toMatchObject({ kind: 'application', remote: true, applicationCode: 4321, reason: 'right away' });
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('SSLKEYLOGFILE', () => {
  it('writes the four traffic secrets of each handshake in NSS key-log format', async () => {
    const { mkdtemp, readFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'sdnet-keylog-'));
    const file = join(dir, 'keys.log');
    process.env.SSLKEYLOGFILE = file;
    try {
      const server = await Endpoint.bind({ alpns: ['k/1'], bindAddr: '127.0.0.1:0' });
      const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
      void (async () => {
        for await (const i of server.accept()) await i.accept();
      })();
      const conn = await client.connect(server.addr(), 'k/1');
      conn.close();
      await client.close();
      await server.close();
      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      const labels = lines.map((l) => l.split(' ')[0]);
      for (const label of ['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET', 'CLIENT_TRAFFIC_SECRET_0', 'SERVER_TRAFFIC_SECRET_0']) {
        // Both ends logged it, with the same client random and secret.
        const matching = lines.filter((l) => l.startsWith(`${label} `));
        expect(matching).toHaveLength(2);
        expect(matching[0]).toBe(matching[1]);
        expect(matching[0]).toMatch(/^[A-Z_0]+ [0-9a-f]{64} [0-9a-f]{64,96}$/);
      }
      expect(labels).toHaveLength(8);
    } finally {
      delete process.env.SSLKEYLOGFILE;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('dialling several addresses', () => {
  it('connects when only a later address in the ticket works, and over IPv6', async () => {
    const server = await Endpoint.bind({ alpns: ['m/1'], bindAddr: ['127.0.0.1:0', '[::1]:0'] });
    const client = await Endpoint.bind({ bindAddr: ['127.0.0.1:0', '[::1]:0'] });
    void (async () => {
      for await (const i of server.accept()) await i.accept().catch(() => undefined);
    })();
    const { EndpointAddr, SocketAddr } = await import('../../src/identity/index.ts');
    const dgram = await import('node:dgram');
    // A dead address first: a UDP socket that swallows everything.
    const sink = dgram.createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
    const v6 = server.boundSockets.find((a) => a.family === 6)!;
    const addr = EndpointAddr.from({ id: server.id, directAddresses: [SocketAddr.parse(`127.0.0.1:${sink.address().port}`), v6] });
    const conn = await client.connect(addr, 'm/1');
    expect(conn.path.key).toBe(`udp:[::1]:${v6.port}`);
    conn.close();
    sink.close();
    await client.close();
    await server.close();
  });
});
