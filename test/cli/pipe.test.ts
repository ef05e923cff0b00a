/**
 * `sdnet pipe` against real processes and sockets: sdnet ↔ sdnet, sdnet listener ↔ a
 * dumbpipe-style iroh client, sdnet connector ↔ a dumbpipe-style iroh listener (the
 * "dumbpipe protocol" acceptance line of issue 6), and the exit codes for bad tickets,
 * unreachable peers and Ctrl-C.
 *
 * The iroh side (`@number0/iroh`) speaks dumbpipe's protocol by hand: ALPN `DUMBPIPEV0`, one
 * bidirectional stream, the connector writes `hello` first.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import iroh from '@number0/iroh';
import { EndpointAddr, EndpointTicket, SecretKey } from '../../src/identity/index.ts';
import { startTestRelay } from '../helpers/relay-test-utils.ts';

const bin = fileURLToPath(new URL('../../bin/sdnet.js', import.meta.url));
const ALPN = Array.from(new TextEncoder().encode('DUMBPIPEV0'));
const HELLO = Array.from(new TextEncoder().encode('hello'));
const MiB = 1024 * 1024;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

interface Proc {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): Buffer;
  stderr(): string;
  /** Exit status (or the signal's name). */
  exited: Promise<number | string>;
}

const children: ChildProcess[] = [];
const irohEndpoints: iroh.Endpoint[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const ep of irohEndpoints.splice(0)) await ep.close().catch(() => {});
});

/** Run `sdnet …` as a child process; `input` goes to its stdin, which then ends (unless `keepStdinOpen`). */
function sdnet(args: string[], options: { input?: Uint8Array; env?: Record<string, string>; keepStdinOpen?: boolean } = {}): Proc {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.env?.IROH_SECRET === undefined) delete env.IROH_SECRET;
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin!.on('error', () => {}); // EPIPE if the child exits before reading everything
  if (options.input) child.stdin!.write(options.input);
  if (!options.keepStdinOpen) child.stdin!.end();
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, stdout: () => Buffer.concat(out), stderr: () => err, exited };
}

/** The ticket a listener prints (the last line of its banner on stderr). */
async function ticketOf(p: Proc): Promise<string> {
  for (;;) {
    const m = /^(endpoint[a-z2-7]+)$/m.exec(p.stderr());
    if (m) return m[1]!;
    const done = await Promise.race([p.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20))]);
    if (done) throw new Error(`listener exited before printing a ticket: ${p.stderr()}`);
  }
}

/** Stderr has exactly one non-empty line matching `re`, and no stack trace. */
function expectOneLine(stderr: string, re: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(re);
  expect(stderr).not.toMatch(/^\s+at /m);
}

async function irohEndpoint(alpns: number[][] = []): Promise<iroh.Endpoint> {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  if (alpns.length > 0) b.alpns(alpns);
  b.bindAddr('127.0.0.1:0');
  const ep = await b.bind();
  irohEndpoints.push(ep);
  return ep;
}

/** An iroh EndpointAddr for the 127.0.0.1 address in an sdnet ticket. */
function irohAddrFromTicket(ticket: string): iroh.EndpointAddr {
  const addr = EndpointTicket.parse(ticket).addr;
  const local = addr.directAddresses.find((a) => a.toString().startsWith('127.0.0.1:'));
  expect(local, `no 127.0.0.1 address in ${JSON.stringify(addr.toJSON())}`).toBeDefined();
  return new iroh.EndpointAddr(iroh.EndpointId.fromString(addr.id.toString()), null, [local!.toString()]);
}

describe('sdnet pipe ↔ sdnet pipe', () => {
  it('moves 4 MiB each way between two processes, verified by SHA-256 at both ends', async () => {
    const toConnector = randomBytes(4 * MiB);
    const toListener = randomBytes(4 * MiB);
    const listener = sdnet(['pipe', 'listen', '--bind', '127.0.0.1:0'], { input: toConnector });
    const ticket = await ticketOf(listener);
    const connector = sdnet(['pipe', 'connect', ticket], { input: toListener });
    const [lc, cc] = await Promise.all([listener.exited, connector.exited]);
    expect({ listener: lc, connector: cc }, `${listener.stderr()}\n${connector.stderr()}`).toEqual({ listener: 0, connector: 0 });
    expect(sha256(listener.stdout())).toBe(sha256(toListener));
    expect(sha256(connector.stdout())).toBe(sha256(toConnector));
    expect(listener.stderr()).toMatch(/^sdnet pipe connect endpoint[a-z2-7]+$/m);
    expect(listener.stderr()).toMatch(/connection from [0-9a-f]{10}/);
  });
});

describe('sdnet pipe path changes', () => {
  it('a connection dialled through the relay alone moves to the direct path, and each side prints one `path:` line on stderr', async () => {
    const relay = await startTestRelay();
    try {
      const toConnector = randomBytes(256 * 1024);
      const toListener = randomBytes(256 * 1024);
      const listener = sdnet(['pipe', 'listen', '--bind', '127.0.0.1:0', '--relay', relay.url], { input: toConnector, keepStdinOpen: true });
      const full = EndpointTicket.parse(await ticketOf(listener)).addr;
      expect(full.relayUrls.map(String)).toEqual([relay.url]);
      // Only the relay: the listener's direct address arrives in its transport parameters.
      const relayOnly = new EndpointTicket(EndpointAddr.from({ id: full.id.toString(), relayUrls: [relay.url] })).toString();
      const connector = sdnet(['pipe', 'connect', relayOnly, '--bind', '127.0.0.1:0'], { input: toListener, keepStdinOpen: true });
      for (let i = 0; i < 3000 && !/^path: direct /m.test(connector.stderr()); i++) await new Promise((r) => setTimeout(r, 20));
      expect(connector.stderr()).toMatch(/^path: direct 127\.0\.0\.1:\d+$/m);
      listener.child.stdin!.end();
      connector.child.stdin!.end();
      const [lc, cc] = await Promise.all([listener.exited, connector.exited]);
      expect({ listener: lc, connector: cc }, `${listener.stderr()}\n${connector.stderr()}`).toEqual({ listener: 0, connector: 0 });
      expect(sha256(listener.stdout())).toBe(sha256(toListener));
      expect(sha256(connector.stdout())).toBe(sha256(toConnector));
      expect(connector.stderr().match(/^path: /gm)).toHaveLength(1);
      // The listener followed the client's migration.
      expect(listener.stderr()).toMatch(/^path: direct 127\.0\.0\.1:\d+$/m);
      expect(listener.stderr().match(/^path: /gm)).toHaveLength(1);
    } finally {
      await relay.close({ graceful: false });
    }
  });
});

describe('dumbpipe protocol against real iroh', () => {
  it('sdnet pipe listen ↔ a dumbpipe-style iroh client: data both ways, verified by hash', async () => {
    const toClient = randomBytes(4 * MiB);
    const toListener = randomBytes(4 * MiB);
    const listener = sdnet(['pipe', 'listen', '--bind', '127.0.0.1:0'], { input: toClient });
    const ticket = await ticketOf(listener);
    // iroh reads our ticket as its own.
    expect(iroh.EndpointTicket.fromString(ticket).endpointAddr().id().toString()).toBe(EndpointTicket.parse(ticket).addr.id.toString());

    const client = await irohEndpoint();
    const conn = await client.connect(irohAddrFromTicket(ticket), ALPN);
    const bi = await conn.openBi();
    const [, received] = await Promise.all([
      (async () => {
        await bi.send.writeAll([...HELLO, ...toListener]);
        await bi.send.finish();
      })(),
      bi.recv.readToEnd(8 * MiB),
    ]);
    expect(sha256(Uint8Array.from(received))).toBe(sha256(toClient));
    expect(await listener.exited, listener.stderr()).toBe(0);
    expect(sha256(listener.stdout())).toBe(sha256(toListener));
    expect(listener.stderr()).toContain(`connection from ${client.id().fmtShort()}`);
    // The listener closed the connection with code 0 once both directions were done.
    expect(await conn.closed()).toBe('closed by peer: done (code 0)');
  });

  it('sdnet pipe listen turns away a wrong handshake, pipes the first good connection, refuses later ones', async () => {
    const toClient = randomBytes(64 * 1024);
    const listener = sdnet(['pipe', 'listen', '--bind', '127.0.0.1:0'], { input: toClient });
    const addr = irohAddrFromTicket(await ticketOf(listener));

    // Not dumbpipe: the listener closes that connection and keeps listening.
    const wrong = await irohEndpoint();
    const wconn = await wrong.connect(addr, ALPN);
    const wbi = await wconn.openBi();
    await wbi.send.writeAll(Array.from(new TextEncoder().encode('HELO!')));
    const reason = await wconn.closed();
    expect(reason).toBe('closed by peer: invalid handshake (code 1)');

    // A dumbpipe client; it keeps its stream open while a third one tries.
    const good = await irohEndpoint();
    const gconn = await good.connect(addr, ALPN);
    const gbi = await gconn.openBi();
    await gbi.send.writeAll([...HELLO, 1, 2, 3]);
    while (!listener.stdout().equals(Buffer.from([1, 2, 3]))) await new Promise((r) => setTimeout(r, 20));

    const late = await irohEndpoint();
    const lateResult = await late.connect(addr, ALPN).then(
      async (c) => {
        // If the handshake won the race against the refusal, the close follows.
        return `connected, then ${await c.closed()}`;
      },
      (e: Error) => `refused: ${e.message}`,
    );
    expect(lateResult).toMatch(/refused|closed/i);

    await gbi.send.writeAll([4, 5]);
    await gbi.send.finish();
    const received = await gbi.recv.readToEnd(MiB);
    expect(sha256(Uint8Array.from(received))).toBe(sha256(toClient));
    expect(await listener.exited, listener.stderr()).toBe(0);
    expect([...listener.stdout()]).toEqual([1, 2, 3, 4, 5]);
    expect(listener.stderr()).toMatch(/ignoring [0-9a-f]{10}: invalid dumbpipe handshake/);
  });

  it('sdnet pipe connect ↔ a dumbpipe-style iroh listener: data both ways, verified by hash', async () => {
    const toConnector = randomBytes(4 * MiB);
    const toListener = randomBytes(4 * MiB);
    const server = await irohEndpoint([ALPN]);
    const serving = (async () => {
      const incoming = await server.acceptNext();
      const conn = await (await incoming!.accept()).connect();
      const bi = await conn.acceptBi();
      const hello = await bi.recv.readExact(5);
      const [received] = await Promise.all([
        bi.recv.readToEnd(8 * MiB),
        (async () => {
          await bi.send.writeAll(Array.from(toConnector));
          await bi.send.finish();
        })(),
      ]);
      const closed = await conn.closed();
      return { hello, received: Uint8Array.from(received), remote: conn.remoteId().toString(), closed };
    })();
    const port = server.boundSockets()[0]!.split(':').pop()!;
    const ticket = new EndpointTicket(EndpointAddr.from({ id: server.id().toString(), directAddresses: [`127.0.0.1:${port}`] })).toString();
    const key = SecretKey.generate();
    const connector = sdnet(['pipe', 'connect', ticket], { input: toListener, env: { IROH_SECRET: Buffer.from(key.toBytes()).toString('hex') } });

    const got = await serving;
    expect(await connector.exited, connector.stderr()).toBe(0);
    expect(new TextDecoder().decode(Uint8Array.from(got.hello))).toBe('hello');
    expect(sha256(got.received)).toBe(sha256(toListener));
    expect(sha256(connector.stdout())).toBe(sha256(toConnector));
    // IROH_SECRET chose the connector's identity, as in dumbpipe.
    expect(got.remote).toBe(key.public().toString());
    expect(got.closed).toBe('closed by peer: done (code 0)');
  });
});

describe('sdnet pipe errors', () => {
  it('a bad ticket exits 2 with one line and no stack trace', async () => {
    for (const bad of ['nodeabcdef', 'endpoint!!!', 'endpointaa']) {
      const p = sdnet(['pipe', 'connect', bad]);
      expect(await p.exited).toBe(2);
      expectOneLine(p.stderr(), /^sdnet pipe: Cannot (parse|decode) ticket/);
      expect(p.stdout().length).toBe(0);
    }
  });

  it('bad usage exits 2', async () => {
    for (const args of [['pipe'], ['pipe', 'connect'], ['pipe', 'listen', '--bind', 'nonsense'], ['pipe', 'listen', 'extra']]) {
      const p = sdnet(args);
      expect(await p.exited, args.join(' ')).toBe(2);
      expectOneLine(p.stderr(), /^sdnet pipe: /);
    }
    const p = sdnet(['pipe', 'listen'], { env: { IROH_SECRET: 'xyz' } });
    expect(await p.exited).toBe(2);
    expectOneLine(p.stderr(), /^sdnet pipe: IROH_SECRET is not a secret key/);
  });

  it('an unreachable peer exits 1 with a clear one-line message', async () => {
    // A UDP port on 127.0.0.1 where nothing listens (bound, then released).
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = sock.address().port;
    await new Promise<void>((r) => sock.close(() => r()));
    const id = SecretKey.generate().public();
    const ticket = new EndpointTicket(EndpointAddr.from({ id, directAddresses: [`127.0.0.1:${port}`] })).toString();
    const p = sdnet(['pipe', 'connect', ticket], { env: { SDNET_CONNECT_TIMEOUT_MS: '1000' } });
    expect(await p.exited).toBe(1);
    expectOneLine(p.stderr(), new RegExp(`^sdnet pipe: cannot reach ${id.fmtShort()}: no answer within 1 s \\(handshake timed out\\)$`));
  });

  it('a ticket without a usable address exits 1', async () => {
    const id = SecretKey.generate().public();
    // An IPv6 address only, and we bind IPv4 only: nothing to send on.
    const ticket = new EndpointTicket(EndpointAddr.from({ id, directAddresses: ['[::1]:9'] })).toString();
    const p = sdnet(['pipe', 'connect', ticket, '--bind', '127.0.0.1:0']);
    expect(await p.exited).toBe(1);
    expectOneLine(p.stderr(), new RegExp(`^sdnet pipe: cannot reach ${id.fmtShort()}: the ticket has no address we can use`));
  });

  it('a ticket whose only relay does not answer exits 1 after the handshake timeout', async () => {
    const id = SecretKey.generate().public();
    // Nothing listens on port 9 of localhost: the relay connection keeps failing.
    const ticket = new EndpointTicket(EndpointAddr.from({ id, relayUrls: ['http://127.0.0.1:9/'] })).toString();
    const p = sdnet(['pipe', 'connect', ticket, '--bind', '127.0.0.1:0'], { env: { SDNET_CONNECT_TIMEOUT_MS: '1500' } });
    expect(await p.exited).toBe(1);
    expectOneLine(p.stderr(), new RegExp(`^sdnet pipe: cannot reach ${id.fmtShort()}: no answer within 1.5 s`));
  });

  it('a bad --relay is a usage error (exit 2)', async () => {
    const p = sdnet(['pipe', 'listen', '--relay', 'ftp://relay.example']);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toMatch(/a relay URL is http:\/\/ or https:\/\//);
  });

  it('Ctrl-C on a waiting listener closes it cleanly (exit 1, "interrupted")', async () => {
    const key = SecretKey.generate();
    const listener = sdnet(['pipe', 'listen', '--bind', '127.0.0.1:0'], { env: { IROH_SECRET: Buffer.from(key.toBytes()).toString('hex') } });
    const ticket = await ticketOf(listener);
    expect(EndpointTicket.parse(ticket).addr.id.toString()).toBe(key.public().toString());
    listener.child.kill('SIGINT');
    expect(await listener.exited).toBe(1);
    expect(listener.stderr()).toMatch(/\nsdnet pipe: interrupted\n$/);
    expect(listener.stderr()).not.toMatch(/^\s+at /m);
  });

  it('Ctrl-C mid-pipe closes the connection; the other side sees why and exits 1', async () => {
    const listener = sdnet(['pipe', 'listen', '--bind', '127.0.0.1:0'], { keepStdinOpen: true });
    const ticket = await ticketOf(listener);
    const connector = sdnet(['pipe', 'connect', ticket], { keepStdinOpen: true });
    connector.child.stdin!.write('ping');
    listener.child.stdin!.write('pong');
    while (listener.stdout().toString() !== 'ping' || connector.stdout().toString() !== 'pong') await new Promise((r) => setTimeout(r, 20));
    connector.child.kill('SIGINT');
    expect(await connector.exited).toBe(1);
    expect(connector.stderr()).toMatch(/sdnet pipe: interrupted\n$/);
    expect(await listener.exited).toBe(1);
    expect(listener.stderr()).toMatch(/sdnet pipe: [0-9a-f]{10} closed the connection \(code 1: interrupted\) before the pipe was done\n$/);
  });
});
