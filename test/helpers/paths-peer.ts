/**
 * One side of the endpoint-paths scenarios (`test/netns/paths.test.ts`): our TypeScript
 * `Endpoint` with relays (the deployable `sdnet-relay` in another namespace) and, unless
 * `bind` is empty, direct UDP. Runs as a child process inside a network namespace.
 *
 * ```sh
 * node paths-peer.ts serve|dial '<json config>'
 * ```
 *
 * Config ({@link PathsPeerConfig}): `{ bind, relays, seed, keySeed, c2s, s2c, pause?, ticket? }`
 * (`ticket` for `dial`).
 *
 * The exchange, on one bidirectional stream the client opens (the shape of
 * `quic-loss-peer.ts`):
 * - the client sends `c2s` bytes of stream `c2s` (see {@link payload}) and finishes;
 * - the server, at the same time, sends `s2c` bytes of stream `s2c`; once it has read the
 *   client's bytes to the end it appends the 32-byte SHA-256 of what it received and finishes;
 * - the client reads everything to the end and then closes the connection (code 0), so both
 *   directions are complete and the server's trailer tells the client the server's hash.
 *
 * `pause: { dir, at }` makes the sender of direction `dir` stop once it has written `at`
 * bytes (handed them to the stream; up to a send buffer of them may still be unacknowledged),
 * print a `checkpoint` line and wait for a line `go` on stdin — so the test can change the
 * network (drop UDP, restart the relay) at a known point of the transfer.
 *
 * stdout, one JSON object per line (`t` is ms since the process started):
 * - `{"event":"ready","id","bound","home","addr","ticket"}` once bound (and online, with relays);
 * - `{"event":"connected","remoteId","path","stats"}` after the handshake;
 * - `{"event":"path","key","kind","relayed","pathChanges"}` whenever the connection's current
 *   path (`conn.path`) is seen to change (polled every 20 ms; `pathChanges` counts every move);
 * - `{"event":"progress","dir","bytes","stats"}` every 8 MiB sent or received;
 * - `{"event":"checkpoint","dir","sent","stats"}` at the pause (see above);
 * - server: `{"event":"received","bytes","sha256","extra","stats"}` once the client's bytes are in;
 * - client: `{"event":"result","received":{"bytes","sha256"},"peerReceivedSha256","stats"}`;
 * - `{"event":"stats","stats"}` for each line `stats` on stdin (also after the connection closed);
 * - `{"event":"error","message"}` on failure (exit status 1).
 *
 * `stats` is the connection's counters (`relayed`, `pathChanges`, `lostPackets`, …) plus the
 * current path key, the endpoint's path counters (`ep`) and its relay connections (`relays`).
 *
 * Payload bytes and secret keys derive from the seeds the test passes (and prints); the QUIC
 * and TLS stacks' own randomness does not.
 */
import { createInterface } from 'node:readline';
import { PAYLOAD_CHUNK, PayloadReceiver, seededKeyBytes, seededPayload, seededPayloadSha256 } from './seeded-payload.ts';
import { fileURLToPath } from 'node:url';
import { Endpoint, EndpointTicket, SecretKey, type Connection } from '../../src/index.ts';

export const ALPN = 'sdnet/paths-test/0';
const CHUNK = PAYLOAD_CHUNK;
const PROGRESS_EVERY = 8 * CHUNK;
const ONLINE_TIMEOUT_MS = 15_000;

export type Direction = 'c2s' | 's2c';

export interface PathsPeerConfig {
  /** UDP addresses to bind (`ip:port`); `[]` = relay only. */
  bind: string[];
  /** Relay URLs (the home relay is chosen among them). */
  relays: string[];
  /** Payload seed (any string). */
  seed: string;
  /** Seed of this side's secret key. */
  keySeed: string;
  /** Bytes from client to server. */
  c2s: number;
  /** Bytes from server to client. */
  s2c: number;
  /** The sender of `dir` waits for `go` on stdin after writing `at` bytes. */
  pause?: { dir: Direction; at: number };
  /** Whom to dial (client only). */
  ticket?: string;
}

/** 32 secret-key bytes derived from a seed string. */
export const keyBytes = (keySeed: string): Uint8Array => seededKeyBytes('paths', keySeed);

/** The payload of one direction (see {@link seededPayload}). */
export const payload = (seed: string, label: string, bytes: number): Generator<Uint8Array> => seededPayload('paths', seed, label, bytes);

/** SHA-256 (hex) of {@link payload}. */
export const payloadSha256 = (seed: string, label: string, bytes: number): string => seededPayloadSha256('paths', seed, label, bytes);

/** The whole of {@link payload} in one buffer (for stdin of `sdnet pipe`). */
export const payloadBytes = (seed: string, label: string, bytes: number): Buffer => Buffer.concat([...payload(seed, label, bytes)]);

const t0 = performance.now();
const print = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...o, t: Math.round(performance.now() - t0) })}\n`);
};

/** stdin commands: `stats` answers at once; `go` releases a paused sender. */
class Commands {
  #go = false;
  #goWaiters: Array<() => void> = [];
  stats: () => unknown = () => null;

  constructor() {
    createInterface({ input: process.stdin }).on('line', (line) => {
      const cmd = line.trim();
      if (cmd === 'stats') print({ event: 'stats', stats: this.stats() });
      else if (cmd === 'go') {
        this.#go = true;
        for (const w of this.#goWaiters.splice(0)) w();
      }
    });
  }

  go(): Promise<void> {
    return this.#go ? Promise.resolve() : new Promise((r) => this.#goWaiters.push(r));
  }
}

function pathKind(conn: Connection): string | undefined {
  const p = conn.path as { kind?: unknown };
  return typeof p.kind === 'string' ? p.kind : undefined;
}

function statsOf(ep: Endpoint, conn: Connection | undefined): Record<string, unknown> {
  return {
    ...(conn ? { ...conn.stats(), path: conn.path.key, pathKind: pathKind(conn) } : {}),
    ep: ep.stats().paths,
    relays: ep.relays().map((r) => ({ url: r.url.toString(), home: r.home, state: r.state, stats: r.stats })),
  };
}

/** Print a `path` line whenever the connection's current path changes (polled). */
function watchPath(conn: Connection): () => void {
  let key = '';
  let changes = -1;
  const check = (): void => {
    const s = conn.stats();
    if (conn.path.key === key && s.pathChanges === changes) return;
    key = conn.path.key;
    changes = s.pathChanges;
    print({ event: 'path', key, kind: pathKind(conn), relayed: s.relayed, pathChanges: s.pathChanges });
  };
  check();
  const timer = setInterval(check, 20);
  return () => {
    check();
    clearInterval(timer);
  };
}

function brief(ep: Endpoint, conn: Connection): Record<string, unknown> {
  const s = conn.stats();
  return { relayed: s.relayed, pathChanges: s.pathChanges, path: conn.path.key, lostPackets: s.lostPackets, rtt: s.rtt, cwnd: s.cwnd, ep: ep.stats().paths };
}

async function send(
  ep: Endpoint,
  conn: Connection,
  writable: WritableStream<Uint8Array>,
  cfg: PathsPeerConfig,
  dir: Direction,
  commands: Commands,
  trailer?: Promise<Uint8Array>,
): Promise<void> {
  const w = writable.getWriter();
  let sent = 0;
  let paused = false;
  for (const c of payload(cfg.seed, dir, cfg[dir])) {
    if (!paused && cfg.pause?.dir === dir && sent >= cfg.pause.at) {
      paused = true;
      print({ event: 'checkpoint', dir, sent, stats: statsOf(ep, conn) });
      await commands.go();
    }
    await w.write(c);
    sent += c.length;
    if (sent % PROGRESS_EVERY === 0) print({ event: 'progress', dir, side: 'sent', bytes: sent, stats: brief(ep, conn) });
  }
  if (trailer) await w.write(await trailer);
  // Resolves once the peer acknowledged everything.
  await w.close();
}

async function receive(ep: Endpoint, conn: Connection, readable: ReadableStream<Uint8Array>, dir: Direction, rx: PayloadReceiver): Promise<void> {
  let next = PROGRESS_EVERY;
  for await (const c of readable) {
    const n = rx.push(c);
    if (n >= next) {
      print({ event: 'progress', dir, side: 'received', bytes: n, stats: brief(ep, conn) });
      next += PROGRESS_EVERY;
    }
  }
}

async function run(role: 'serve' | 'dial', cfg: PathsPeerConfig): Promise<void> {
  const commands = new Commands();
  const ep = await Endpoint.bind({ secretKey: SecretKey.fromBytes(keyBytes(cfg.keySeed)), alpns: role === 'serve' ? [ALPN] : [], bindAddr: cfg.bind, relays: cfg.relays });
  commands.stats = () => statsOf(ep, undefined);
  const home = cfg.relays.length > 0 ? await ep.online({ signal: AbortSignal.timeout(ONLINE_TIMEOUT_MS) }) : undefined;
  print({ event: 'ready', id: ep.id.toString(), bound: ep.boundSockets.map(String), home: home?.toString(), addr: ep.addr().toJSON(), ticket: new EndpointTicket(ep.addr()).toString() });

  if (role === 'serve') {
    let conn: Connection | undefined;
    for await (const inc of ep.accept()) {
      conn = await inc.accept();
      break;
    }
    if (!conn) throw new Error('endpoint closed before a connection came');
    const c = conn;
    commands.stats = () => statsOf(ep, c);
    print({ event: 'connected', remoteId: conn.remoteId.toString(), path: conn.path.key, stats: statsOf(ep, conn) });
    watchPath(conn);
    const bi = await conn.acceptBi();
    const rx = new PayloadReceiver(cfg.c2s);
    let digest!: (d: Uint8Array) => void;
    const trailer = new Promise<Uint8Array>((r) => (digest = r));
    const sending = send(ep, conn, bi.writable, cfg, 's2c', commands, trailer);
    await receive(ep, conn, bi.readable, 'c2s', rx);
    const got = rx.result();
    print({ event: 'received', bytes: got.bytes, sha256: got.sha256, extra: got.trailer.length / 2, stats: statsOf(ep, conn) });
    digest(Buffer.from(got.sha256, 'hex'));
    // The client closes as soon as it has read our trailer, possibly before our last packets
    // were acknowledged: a failed close is not a failure here.
    await sending.catch(() => undefined);
    await new Promise<never>(() => undefined); // until the test kills us
  }

  const addr = EndpointTicket.parse(cfg.ticket!).addr;
  const conn = await ep.connect(addr, ALPN);
  commands.stats = () => statsOf(ep, conn);
  print({ event: 'connected', remoteId: conn.remoteId.toString(), path: conn.path.key, stats: statsOf(ep, conn) });
  const stopWatching = watchPath(conn);
  const bi = await conn.openBi();
  const rx = new PayloadReceiver(cfg.s2c);
  const sending = send(ep, conn, bi.writable, cfg, 'c2s', commands);
  await receive(ep, conn, bi.readable, 's2c', rx);
  await sending;
  stopWatching();
  const got = rx.result();
  print({ event: 'result', received: { bytes: got.bytes, sha256: got.sha256 }, peerReceivedSha256: got.trailer, stats: statsOf(ep, conn) });
  conn.close(0, 'done');
  await ep.close({ graceMs: 500 });
}

async function main(argv: string[]): Promise<void> {
  const [role, json] = argv;
  if ((role !== 'serve' && role !== 'dial') || json === undefined) throw new Error("usage: paths-peer.ts serve|dial '<json config>'");
  const cfg = JSON.parse(json) as PathsPeerConfig;
  if (role === 'dial' && cfg.ticket === undefined) throw new Error('dial needs config.ticket');
  await run(role, cfg);
  process.exit(0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    print({ event: 'error', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err), code: (err as { code?: unknown }).code });
    process.exit(1);
  });
}
