import { it, expect } from 'vitest';
import iroh from '@number0/iroh';
import { Endpoint } from '../../src/endpoint/index.ts';
import { EndpointAddr } from '../../src/identity/index.ts';

it('ts client -> iroh server echo', async () => {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  b.alpns([Array.from(new TextEncoder().encode('echo/1'))]);
  b.bindAddr('127.0.0.1:0');
  const server = await b.bind();
  const serving = (async () => {
    const inc = await server.acceptNext();
    const accepting = await inc!.accept();
    const conn = await accepting.connect();
    const bi = await conn.acceptBi();
    const data = await bi.recv.readToEnd(1 << 20);
    await bi.send.writeAll(data);
    await bi.send.finish();
    await conn.closed();
  })();
  const port = Number(server.boundSockets()[0]!.split(':').pop());
  const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
  const conn = await client.connect(EndpointAddr.from({ id: server.id().toString(), directAddresses: [`127.0.0.1:${port}`] }), 'echo/1');
  console.log('connected', conn.remoteId.toString(), conn.alpn);
  const bi = await conn.openBi();
  const w = bi.writable.getWriter();
  await w.write(new TextEncoder().encode('hello iroh'));
  await w.close();
  const chunks = [];
  for await (const c of bi.readable) chunks.push(c);
  const text = new TextDecoder().decode(Buffer.concat(chunks));
  expect(text).toBe('hello iroh');
  conn.close(7, 'bye');
  await serving.catch((e) => console.log('serving', e));
  await client.close();
  await server.close();
});

it('iroh client -> ts server echo', async () => {
  const server = await Endpoint.bind({ alpns: ['echo/1'], bindAddr: '127.0.0.1:0' });
  const serving = (async () => {
    for await (const incoming of server.accept()) {
      const conn = await incoming.accept();
      const bi = await conn.acceptBi();
      const chunks = [];
      for await (const c of bi.readable) chunks.push(c);
      const w = bi.writable.getWriter();
      await w.write(Buffer.concat(chunks));
      await w.close();
      return conn;
    }
  })();
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  b.bindAddr('127.0.0.1:0');
  const client = await b.bind();
  const port = server.boundSockets[0]!.port;
  const addr = new iroh.EndpointAddr(iroh.EndpointId.fromString(server.id.toString()), null, [`127.0.0.1:${port}`]);
  const conn = await client.connect(addr, Array.from(new TextEncoder().encode('echo/1')));
  const bi = await conn.openBi();
  await bi.send.writeAll(Array.from(new TextEncoder().encode('hello ts')));
  await bi.send.finish();
  const back = await bi.recv.readToEnd(1 << 20);
  expect(new TextDecoder().decode(Uint8Array.from(back))).toBe('hello ts');
  const sconn = await serving;
  expect(sconn!.remoteId.toString()).toBe(client.id().toString());
  conn.close(0n, [1, 2]);
  await client.close();
  await server.close();
});
