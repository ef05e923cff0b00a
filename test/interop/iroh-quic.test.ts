/**
 * Our QUIC against the real iroh 1.0.2 (`@number0/iroh`) over direct UDP on loopback, both
 * roles: handshake with the right ids, echo, 64 MiB each way verified by hash, 100
 * concurrent streams, close codes and reasons, datagrams, a key update we start mid-transfer,
 * and the failures (wrong expected id, wrong ALPN) with their codes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import iroh from '@number0/iroh';
import { Endpoint } from '../../src/endpoint/index.ts';
import { ConnectionError } from '../../src/transport/quic/connection/types.ts';
import { EndpointAddr, SecretKey } from '../../src/identity/index.ts';
import { alpnArray, bindIroh, fromArray, hashOfRepeated, irohAddr, irohAddrOf, irohReadHashed, pattern, readAll, readHashed } from '../helpers/iroh.ts';

const ALPN = 'sdnet/interop/1';
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function ours(alpns: string[] = []): Promise<Endpoint> {
  const ep = await Endpoint.bind({ alpns, bindAddr: '127.0.0.1:0' });
  cleanups.push(() => ep.close());
  return ep;
}
async function theirs(alpns: string[] = []): Promise<iroh.Endpoint> {
  const ep = await bindIroh({ alpns });
  cleanups.push(() => ep.close());
  return ep;
}

/** TS client → iroh server: the server runs `serve` on each accepted connection. */
async function tsToIroh(serve: (c: iroh.Connection) => Promise<void>) {
  const server = await theirs([ALPN]);
  const served = (async () => {
    const inc = await server.acceptNext();
    const conn = await (await inc!.accept()).connect();
    await serve(conn);
    return conn;
  })();
  const client = await ours();
  const conn = await client.connect(irohAddr(server), ALPN);
  return { server, client, conn, served };
}

/** iroh client → TS server. */
async function irohToTs() {
  const server = await ours([ALPN]);
  const accepted = (async () => {
    for await (const inc of server.accept()) return inc.accept();
    throw new Error('no connection');
  })();
  const client = await theirs();
  const conn = await client.connect(irohAddrOf(server.id.toString(), server.boundSockets[0]!.port), alpnArray(ALPN));
  return { server, client, conn, accepted: await accepted };
}

describe('TS client → iroh server', () => {
  it('handshakes with the right ids and echoes', async () => {
    const { client, conn, served, server } = await tsToIroh(async (c) => {
      const bi = await c.acceptBi();
      await bi.send.writeAll(await bi.recv.readToEnd(1 << 16));
      await bi.send.finish();
      await c.closed();
    });
    expect(conn.remoteId.toString()).toBe(server.id().toString());
    expect(conn.alpn).toBe(ALPN);
    const bi = await conn.openBi();
    const w = bi.writable.getWriter();
    await w.write(new TextEncoder().encode('hello iroh'));
    await w.close();
    expect(new TextDecoder().decode(await readAll(bi.readable))).toBe('hello iroh');
    // iroh offers multipath (initial_max_path_id 7) and so do we: it is in use on path 0.
    expect(conn.stats().multipath).toBe(true);
    conn.close(0, 'done');
    // iroh authenticated us as our EndpointId.
    expect((await served).remoteId().toString()).toBe(client.id.toString());
  });

  it('moves 64 MiB each way, verified by hash, with a key update we start mid-transfer', async () => {
    const up = pattern(1);
    const down = pattern(2);
    const MB = 64;
    const { conn, served } = await tsToIroh(async (c) => {
      const bi = await c.acceptBi();
      // Send our 64 MiB while reading theirs.
      const sending = (async () => {
        for (let i = 0; i < MB; i++) await bi.send.writeAll(down.blockArray);
        await bi.send.finish();
      })();
      const [n, digest] = await irohReadHashed(bi.recv);
      await sending;
      const ok = n === MB << 20 && digest === hashOfRepeated(up.block, MB);
      await bi.send.stopped().catch(() => undefined);
      c.close(ok ? 42n : 99n, alpnArray('verified'));
      await c.closed().catch(() => undefined);
    });
    const bi = await conn.openBi();
    const reading = readHashed(bi.readable);
    const w = bi.writable.getWriter();
    let updated = false;
    for (let i = 0; i < MB; i++) {
      await w.write(up.block);
      if (i === MB / 2) updated = conn.updateKeys();
    }
    await w.close();
    const [n, digest] = await reading;
    expect(n).toBe(MB << 20);
    expect(digest).toBe(hashOfRepeated(down.block, MB));
    expect(updated).toBe(true);
    expect(conn.stats().keyUpdates).toBeGreaterThanOrEqual(1);
    // iroh closes with 42 only if our 64 MiB arrived intact.
    const err = await conn.closed;
    expect(err).toMatchObject({ code: 'ERR_QUIC_APPLICATION_CLOSED', applicationCode: 42, reason: 'verified', remote: true });
    await served;
  }, 120_000);

  it('runs 100 concurrent streams', async () => {
    const { conn } = await tsToIroh(async (c) => {
      const handlers: Promise<void>[] = [];
      for (let i = 0; i < 100; i++) {
        const bi = await c.acceptBi();
        handlers.push(
          (async () => {
            const data = await bi.recv.readToEnd(1 << 20);
            await bi.send.writeAll(data.reverse());
            await bi.send.finish();
          })(),
        );
      }
      await Promise.all(handlers);
      await c.closed();
    });
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const bi = await conn.openBi();
        const msg = new TextEncoder().encode(`stream ${i} `.repeat(50 + i));
        const w = bi.writable.getWriter();
        await w.write(msg);
        await w.close();
        const back = await readAll(bi.readable);
        return Buffer.from(back).equals(Buffer.from(msg.slice().reverse()));
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    conn.close(0, 'done');
  });

  it('exchanges datagrams both ways', async () => {
    const { conn } = await tsToIroh(async (c) => {
      for (let i = 0; i < 3; i++) {
        const d = await c.readDatagram();
        c.sendDatagram(d.map((x) => x ^ 0xff));
      }
      await c.closed();
    });
    expect(conn.maxDatagramSize).toBeGreaterThan(1000);
    const got: string[] = [];
    for (let i = 0; i < 3; i++) {
      // Datagrams are unreliable: resend until the answer comes.
      const msg = new TextEncoder().encode(`dgram ${i}`);
      const answer = (async () => conn.readDatagram())();
      conn.sendDatagram(msg);
      const back = await answer;
      got.push(Buffer.from(back.map((x) => x ^ 0xff)).toString());
    }
    expect(got).toEqual(['dgram 0', 'dgram 1', 'dgram 2']);
    conn.close(0, 'done');
  });

  it('sees the application close code and reason iroh sends', async () => {
    const { conn } = await tsToIroh(async (c) => {
      c.close(7n, alpnArray('seven'));
    });
    expect(await conn.closed).toMatchObject({ code: 'ERR_QUIC_APPLICATION_CLOSED', applicationCode: 7, reason: 'seven', remote: true });
  });

  it('delivers our application close code and reason to iroh', async () => {
    let reason = '';
    const { conn, served } = await tsToIroh(async (c) => {
      reason = await c.closed();
    });
    conn.close(1234, 'ours');
    await served;
    expect(reason).toMatch(/1234/);
    expect(reason).toMatch(/ours/);
  });

  it('fails with ERR_TLS_PEER_ID_MISMATCH when the server is not the id we dialled', async () => {
    const server = await theirs([ALPN]);
    void server.acceptNext().then((inc) => inc?.accept().then((a) => a.connect()).catch(() => undefined));
    const client = await ours();
    const wrong = EndpointAddr.from({ id: SecretKey.generate().public(), directAddresses: irohAddr(server).directAddresses });
    const err = await client.connect(wrong, ALPN).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'ERR_TLS_PEER_ID_MISMATCH', transportCode: 0x100 + 42 });
  });

  it('fails with ERR_TLS_NO_ALPN when iroh does not speak the ALPN', async () => {
    const server = await theirs(['other/1']);
    void server.acceptNext().then((inc) => inc?.accept().then((a) => a.connect()).catch(() => undefined));
    const client = await ours();
    const err = await client.connect(irohAddr(server), ALPN).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'ERR_TLS_NO_ALPN', remote: true, transportCode: 0x178 });
  });
});

describe('iroh client → TS server', () => {
  it('handshakes with the right ids and echoes', async () => {
    const { conn, accepted, client, server } = await irohToTs();
    expect(accepted.remoteId.toString()).toBe(client.id().toString());
    expect(conn.remoteId().toString()).toBe(server.id.toString());
    const echo = (async () => {
      const bi = await accepted.acceptBi();
      const data = await readAll(bi.readable);
      const w = bi.writable.getWriter();
      await w.write(data);
      await w.close();
    })();
    const bi = await conn.openBi();
    await bi.send.writeAll(alpnArray('hello ts'));
    await bi.send.finish();
    expect(new TextDecoder().decode(fromArray(await bi.recv.readToEnd(1 << 16)))).toBe('hello ts');
    await echo;
    expect(accepted.stats().multipath).toBe(true);
    conn.close(0n, []);
  });

  it('moves 64 MiB each way, verified by hash, with a key update we start mid-transfer', async () => {
    const up = pattern(3);
    const down = pattern(4);
    const MB = 64;
    const { conn, accepted } = await irohToTs();
    const ours = (async () => {
      const bi = await accepted.acceptBi();
      const reading = readHashed(bi.readable);
      const w = bi.writable.getWriter();
      let updated = false;
      for (let i = 0; i < MB; i++) {
        await w.write(down.block);
        if (i === MB / 2) updated = accepted.updateKeys();
      }
      await w.close();
      return { read: await reading, updated };
    })();
    const bi = await conn.openBi();
    const sending = (async () => {
      for (let i = 0; i < MB; i++) await bi.send.writeAll(up.blockArray);
      await bi.send.finish();
    })();
    const [n, digest] = await irohReadHashed(bi.recv);
    await sending;
    const result = await ours;
    expect(n).toBe(MB << 20);
    expect(digest).toBe(hashOfRepeated(down.block, MB));
    expect(result.read).toEqual([MB << 20, hashOfRepeated(up.block, MB)]);
    expect(result.updated).toBe(true);
    expect(accepted.stats().keyUpdates).toBeGreaterThanOrEqual(1);
    conn.close(0n, []);
  }, 120_000);

  it('runs 100 concurrent streams', async () => {
    const { conn, accepted } = await irohToTs();
    const serving = (async () => {
      const handlers: Promise<void>[] = [];
      for (let i = 0; i < 100; i++) {
        const bi = await accepted.acceptBi();
        handlers.push(
          (async () => {
            const data = await readAll(bi.readable);
            const w = bi.writable.getWriter();
            await w.write(data.slice().reverse());
            await w.close();
          })(),
        );
      }
      await Promise.all(handlers);
    })();
    const ok = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const bi = await conn.openBi();
        const msg = alpnArray(`iroh stream ${i} `.repeat(40 + i));
        await bi.send.writeAll(msg);
        await bi.send.finish();
        const back = await bi.recv.readToEnd(1 << 20);
        return JSON.stringify(back) === JSON.stringify(msg.slice().reverse());
      }),
    );
    await serving;
    expect(ok.every(Boolean)).toBe(true);
    conn.close(0n, []);
  });

  it('exchanges datagrams both ways', async () => {
    const { conn, accepted } = await irohToTs();
    const echo = (async () => {
      for (let i = 0; i < 3; i++) {
        const d = await accepted.readDatagram();
        accepted.sendDatagram(d.map((x) => x ^ 0x55));
      }
    })();
    for (let i = 0; i < 3; i++) {
      const reply = conn.readDatagram();
      conn.sendDatagram(alpnArray(`d${i}`));
      expect(new TextDecoder().decode(fromArray(await reply).map((x) => x ^ 0x55))).toBe(`d${i}`);
    }
    await echo;
    conn.close(0n, []);
  });

  it('close codes and reasons cross in both directions', async () => {
    const first = await irohToTs();
    first.conn.close(77n, alpnArray('from iroh'));
    expect(await first.accepted.closed).toMatchObject({ code: 'ERR_QUIC_APPLICATION_CLOSED', applicationCode: 77, reason: 'from iroh' });
    const second = await irohToTs();
    second.accepted.close(88, 'from ts');
    const reason = await second.conn.closed();
    expect(reason).toMatch(/88/);
    expect(reason).toMatch(/from ts/);
  });

  it('follows our Retry (address validation, a token bound to the Retry SCID) and echoes', async () => {
    const server = await Endpoint.bind({ alpns: [ALPN], bindAddr: '127.0.0.1:0', retry: 'always' });
    cleanups.push(() => server.close());
    const accepted = (async () => {
      for await (const inc of server.accept()) return inc.accept();
      throw new Error('no connection');
    })();
    const client = await theirs();
    const conn = await client.connect(irohAddrOf(server.id.toString(), server.boundSockets[0]!.port), alpnArray(ALPN));
    const tsConn = await accepted;
    expect(server.stats().retries).toBe(1);
    const echo = (async () => {
      const bi = await tsConn.acceptBi();
      const data = await readAll(bi.readable);
      const w = bi.writable.getWriter();
      await w.write(data);
      await w.close();
    })();
    const bi = await conn.openBi();
    await bi.send.writeAll(alpnArray('after a retry'));
    await bi.send.finish();
    expect(new TextDecoder().decode(fromArray(await bi.recv.readToEnd(1 << 16)))).toBe('after a retry');
    await echo;
    conn.close(0n, []);
  });

  it('refuses an ALPN we do not serve with no_application_protocol (0x178)', async () => {
    const server = await ours(['only/1']);
    const client = await theirs();
    const err = await client.connect(irohAddrOf(server.id.toString(), server.boundSockets[0]!.port), alpnArray(ALPN)).catch((e: unknown) => e);
    expect(String(err)).toMatch(/no_application_protocol|0x178|120|alpn/i);
  });
});
