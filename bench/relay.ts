/**
 * Relay forwarding speed and memory (issue 4 benchmark), as JSON lines.
 *
 * Throughput: 1, 10 and 100 client pairs, each sender streaming 1200-byte datagrams to its
 * receiver through (a) the sdnet relay server and (b) the anchors measured in the same run —
 * plain `node:net` TCP forwarders: one that parses length-prefixed 1200-byte messages and
 * writes each to the partner socket (the same per-datagram work a relay does, without the
 * WebSocket and relay framing) and one that just pipes the sockets. The server runs in its own
 * process; its forwarding rate and CPU time are read from inside it, so the load generator's
 * own cost does not count. The figures to read are the ratios relay / anchor.
 *
 * Memory: RSS and V8 heap of the relay process per idle authenticated client, at 1,000 and
 * 10,000 clients.
 *
 * Processes are pinned with `taskset` when available (server on CPU 0, load on CPU 1), and each
 * throughput figure is the median of three runs.
 *
 * `npm run bench relay` (or `node bench/relay.ts [--quick] [--only=relay:10]`).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SecretKey } from '../src/identity/index.ts';
import { defaultCryptoProvider } from '../src/transport/crypto/index.ts';
import { encodeDatagramFrame, KeyCache, RelayClientConnection } from '../src/relay/protocol/index.ts';
import { startRelayServer } from '../relay-server/src/index.ts';

const SELF = fileURLToPath(import.meta.url);
const DATAGRAM = 1200;
const quick = process.argv.includes('--quick');
const WARMUP_MS = quick ? 300 : 700;
const MEASURE_MS = quick ? 1000 : 2500;

type Kind = 'relay' | 'tcp-forwarder' | 'tcp-pipe';

interface Snapshot {
  forwarded: number;
  bytes: number;
  cpuUs: number;
  userUs: number;
  timeMs: number;
  drops: number;
}

// ---------------------------------------------------------------------------------------
// Server process: the relay or an anchor forwarder. Answers {cmd:'snapshot'} and {cmd:'mem'}.

async function serverMain(kind: Kind): Promise<void> {
  let snapshot: () => { forwarded: number; bytes: number; drops: number };
  let port: number;
  if (kind === 'relay') {
    // Every load client comes from 127.0.0.1: the per-address admission limits are off.
    const relay = await startRelayServer({
      port: 0,
      rateLimit: false,
      limits: { maxClients: 20_000, maxHandshaking: 20_000, maxConnectionsPerIp: 0, maxHandshakingPerIp: 0, acceptRatePerIp: 0 },
    });
    port = relay.port;
    snapshot = () => {
      const s = relay.stats();
      return { forwarded: s.datagramsRelayed, bytes: s.bytesRelayed, drops: s.dropsQueueFull + s.dropsNoRecipient };
    };
  } else {
    // A pair is formed by two connections sending the same 4-byte pair id; the first one is the
    // sender, the second the receiver. Then the sender writes [u16 length][payload] messages.
    let forwarded = 0;
    let bytes = 0;
    let drops = 0;
    let malformed = 0;
    const waiting = new Map<number, Socket>();
    const server = createServer({ noDelay: true }, (socket) => {
      socket.on('error', () => undefined);
      let head = Buffer.alloc(0);
      const onHead = (d: Buffer): void => {
        head = Buffer.concat([head, d]);
        if (head.length < 4) return;
        socket.off('data', onHead);
        const id = head.readUInt32BE(0);
        const rest = head.subarray(4);
        const sender = waiting.get(id);
        if (sender === undefined) {
          waiting.set(id, socket);
          return;
        }
        waiting.delete(id);
        const receiver = socket;
        if (kind === 'tcp-pipe') {
          sender.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            forwarded += chunk.length / (DATAGRAM + 2);
          });
          sender.pipe(receiver);
          return;
        }
        let buf: Buffer = rest.length > 0 ? rest : Buffer.alloc(0);
        sender.on('data', (chunk: Buffer) => {
          buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
          let off = 0;
          // Same batching as the relay: cork, one write per message, uncork on the next tick.
          receiver.cork();
          while (buf.length - off >= 2) {
            const len = buf.readUInt16BE(off);
            if (buf.length - off < 2 + len) break;
            if (len !== DATAGRAM) malformed++;
            // Bounded queue towards the receiver, as the relay's 4 MiB, dropping beyond it.
            if (receiver.writableLength < 4 * 1024 * 1024) {
              receiver.write(buf.subarray(off, off + 2 + len));
              forwarded++;
              bytes += len;
            } else drops++;
            off += 2 + len;
          }
          process.nextTick(() => receiver.uncork());
          buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
        });
      };
      socket.on('data', onHead);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    snapshot = () => ({ forwarded: Math.floor(forwarded), bytes, drops: drops + malformed * 1e9 });
  }
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'snapshot') {
      const cpu = process.cpuUsage();
      process.send!({ ...snapshot(), cpuUs: cpu.user + cpu.system, userUs: cpu.user, timeMs: performance.now() });
    } else if (m.cmd === 'mem') {
      for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
      process.send!(process.memoryUsage());
    } else if (m.cmd === 'exit') process.exit(0);
  });
  process.send!({ ready: true, port });
}

// ---------------------------------------------------------------------------------------
// Load process: N pairs (throughput) or N idle clients (memory).

/**
 * A minimal relay client on a raw TCP socket, so the load generator costs as little as the
 * anchors' (no WebSocket library on this side): the upgrade request as iroh sends it, the
 * handshake through the sans-IO state machine, then pre-built frames. Frames are masked with
 * a fixed non-zero key (masked once, sent many times); the relay unmasks every one of them as
 * it would a real client's. (A zero key would let `ws` skip unmasking and flatter the relay.)
 */
interface RawClient {
  socket: Socket;
  key: SecretKey;
  /** After the handshake: called with each chunk of bytes from the relay (frames not parsed). */
  onBytes: ((chunk: Buffer) => void) | undefined;
}

const MASK = [0x37, 0xfa, 0x21, 0x3d];

/** A client→relay WebSocket frame: FIN + binary, masked (RFC 6455 §5.3). */
function maskedFrame(payload: Uint8Array): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x82, 0x80 | n, ...MASK]) : Buffer.from([0x82, 0x80 | 126, n >> 8, n & 0xff, ...MASK]);
  return Buffer.concat([head, Buffer.from(payload.map((b, i) => b ^ MASK[i & 3]!))]);
}

function relayClient(port: number, answerPings = false): Promise<RawClient> {
  const key = SecretKey.generate();
  const conn = new RelayClientConnection({ secretKey: key, version: 2, crypto: defaultCryptoProvider, keys: new KeyCache(), now: 0, pingIntervalMs: 1e9 });
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  const client: RawClient = { socket, key, onBytes: undefined };
  socket.write(`GET /relay HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: iroh-relay-v2\r\n\r\n`);
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let connected = false;
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      if (connected && !answerPings) {
        client.onBytes?.(chunk);
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.subarray(0, 12).toString().includes('101')) return reject(new Error(buf.subarray(0, end).toString()));
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      // Server frames are unmasked and small until the handshake is done.
      while (buf.length >= 2) {
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        }
        if (buf.length < off + len) return;
        const payload = new Uint8Array(buf.subarray(off, off + len));
        buf = buf.subarray(off + len);
        if (connected) {
          if (payload[0] === 9) socket.write(maskedFrame(Uint8Array.of(10, ...payload.subarray(1, 9))));
          continue;
        }
        conn.handleFrame(0, payload);
        for (let t = conn.pollTransmit(); t !== undefined; t = conn.pollTransmit()) if (t[0] !== 9) socket.write(maskedFrame(t));
        for (let e = conn.pollEvent(); e !== undefined; e = conn.pollEvent()) {
          if (e.type === 'connected') {
            connected = true;
            resolve(client);
          }
          if (e.type === 'closed') reject(e.error);
        }
      }
    });
  });
}

async function loadMain(kind: Kind, port: number, pairs: number): Promise<void> {
  const payload = new Uint8Array(DATAGRAM).fill(0xab);
  const senders: Array<() => void> = [];
  let running = true;
  const pumpOf = (socket: Socket, chunk: Buffer): (() => void) => {
    const pump = (): void => {
      if (!running) return;
      // Flow control on our side: keep at most ~256 KiB in our socket buffer.
      while (socket.writableLength < 256 * 1024) socket.write(chunk);
      setImmediate(pump);
    };
    return pump;
  };
  if (kind === 'relay') {
    for (let i = 0; i < pairs; i++) {
      const [tx, rx] = await Promise.all([relayClient(port), relayClient(port)]);
      rx.onBytes = () => undefined;
      const frame = maskedFrame(encodeDatagramFrame(4, rx.key.public().bytes, 0, 0, payload));
      senders.push(pumpOf(tx.socket, Buffer.concat(Array.from({ length: 16 }, () => frame))));
    }
  } else {
    const msg = Buffer.alloc(2 + DATAGRAM, 0xab);
    msg.writeUInt16BE(DATAGRAM, 0);
    const chunk = Buffer.concat(Array.from({ length: 16 }, () => msg));
    for (let i = 0; i < pairs; i++) {
      const id = Buffer.alloc(4);
      id.writeUInt32BE(i);
      const open = (): Promise<Socket> =>
        new Promise((r) => {
          const s = connect(port, '127.0.0.1', () => r(s));
          s.setNoDelay(true);
        });
      const tx = await open();
      tx.write(id);
      await new Promise((r) => setTimeout(r, 2));
      const rx = await open();
      rx.write(id);
      rx.on('data', () => undefined);
      senders.push(pumpOf(tx, chunk));
    }
  }
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'go') for (const s of senders) s();
    if (m.cmd === 'stop') {
      running = false;
      process.exit(0);
    }
  });
  process.send!({ connected: true });
}

async function idleMain(port: number, clients: number): Promise<void> {
  const all: Socket[] = [];
  for (let i = 0; i < clients; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, clients - i) }, () => relayClient(port, true)));
    all.push(...batch.map((b) => b.socket));
  }
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'stop') {
      for (const s of all) s.destroy();
      setTimeout(() => process.exit(0), 200);
    }
  });
  process.send!({ connected: all.length });
}

// ---------------------------------------------------------------------------------------
// Orchestrator.

/** `taskset`, when present and there are ≥ 2 CPUs: the server gets CPU 0, the load CPU 1. */
const TASKSET = availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;

function start(args: string[], execArgv: string[] = []): ChildProcess {
  // BENCH_PROF=dir writes a V8 CPU profile of the server process there.
  if (args[0] === 'server' && process.env.BENCH_PROF) execArgv = [...execArgv, '--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`];
  if (!TASKSET) return fork(SELF, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const cpu = args[0] === 'server' ? '0' : '1';
  return spawn('taskset', ['-c', cpu, process.execPath, ...execArgv, SELF, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function next<T>(child: ChildProcess, pred: (m: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: T): void => {
      if (!pred(m)) return;
      child.off('message', onMsg);
      child.off('exit', onExit);
      resolve(m);
    };
    const onExit = (code: number | null): void => reject(new Error(`child exited (${code})`));
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

async function ask<T>(child: ChildProcess, cmd: string): Promise<T> {
  const p = next<T>(child);
  child.send({ cmd });
  return p;
}

async function stop(child: ChildProcess, cmd = 'exit'): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.send({ cmd });
  await exited;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Throughput {
  datagramsPerSec: number;
  bytesPerSec: number;
  serverCpuUsPerDatagram: number;
  /** Of that, user time (the rest is the kernel's: mostly TCP on loopback). */
  serverUserCpuUsPerDatagram: number;
  drops: number;
}

/** The median run (by datagrams/s) of `runs`. */
async function throughput(kind: Kind, pairs: number, runs = quick ? 1 : 3): Promise<Throughput & { runs: number }> {
  const results: Throughput[] = [];
  for (let i = 0; i < runs; i++) results.push(await throughputOnce(kind, pairs));
  results.sort((a, b) => a.datagramsPerSec - b.datagramsPerSec);
  return { ...results[Math.floor(results.length / 2)]!, runs };
}

async function throughputOnce(kind: Kind, pairs: number): Promise<Throughput> {
  const server = start(['server', kind]);
  const { port } = await next<{ ready: boolean; port: number }>(server, (m) => m.ready);
  const load = start(['load', kind, String(port), String(pairs)]);
  await next(load, (m: { connected?: boolean }) => m.connected === true);
  load.send({ cmd: 'go' });
  await sleep(WARMUP_MS);
  const a = await ask<Snapshot>(server, 'snapshot');
  await sleep(MEASURE_MS);
  const b = await ask<Snapshot>(server, 'snapshot');
  await stop(load, 'stop');
  await stop(server);
  const dt = (b.timeMs - a.timeMs) / 1000;
  const n = b.forwarded - a.forwarded;
  return {
    datagramsPerSec: Math.round(n / dt),
    bytesPerSec: Math.round((b.bytes - a.bytes) / dt),
    serverCpuUsPerDatagram: n > 0 ? +((b.cpuUs - a.cpuUs) / n).toFixed(3) : NaN,
    serverUserCpuUsPerDatagram: n > 0 ? +((b.userUs - a.userUs) / n).toFixed(3) : NaN,
    drops: b.drops - a.drops,
  };
}

async function memory(clients: number[]): Promise<void> {
  for (const n of clients) {
    const server = start(['server', 'relay'], ['--expose-gc']);
    const { port } = await next<{ ready: boolean; port: number }>(server, (m) => m.ready);
    // Warm up code paths so the baseline is not flattered by lazy compilation.
    const warm = start(['idle', String(port), '100']);
    await next(warm, (m: { connected?: number }) => typeof m.connected === 'number');
    await stop(warm, 'stop');
    await sleep(300);
    const base = await ask<NodeJS.MemoryUsage>(server, 'mem');
    const load = start(['idle', String(port), String(n)]);
    await next(load, (m: { connected?: number }) => typeof m.connected === 'number');
    await sleep(500);
    const full = await ask<NodeJS.MemoryUsage>(server, 'mem');
    await stop(load, 'stop');
    await stop(server);
    console.log(
      JSON.stringify({
        bench: 'relay',
        name: `idle clients: ${n}`,
        clients: n,
        rssPerClientBytes: Math.round((full.rss - base.rss) / n),
        heapPerClientBytes: Math.round((full.heapUsed - base.heapUsed) / n),
        externalPerClientBytes: Math.round((full.external + full.arrayBuffers - base.external - base.arrayBuffers) / n),
        rssBaselineMiB: +(base.rss / 1048576).toFixed(1),
        rssMiB: +(full.rss / 1048576).toFixed(1),
      }),
    );
  }
}

async function main(): Promise<void> {
  // `--only relay:10` measures one configuration (for profiling with BENCH_PROF=1).
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  if (only !== undefined) {
    const [kind, pairs] = only.split(':');
    console.log(JSON.stringify({ bench: 'relay', name: only, ...(await throughput(kind as Kind, Number(pairs))) }));
    return;
  }
  for (const pairs of [1, 10, 100]) {
    const relay = await throughput('relay', pairs);
    const fwd = await throughput('tcp-forwarder', pairs);
    const pipe = await throughput('tcp-pipe', pairs);
    console.log(JSON.stringify({ bench: 'relay', name: `anchor node:net per-message forwarder, ${pairs} pairs`, pairs, datagramBytes: DATAGRAM, ...fwd }));
    console.log(JSON.stringify({ bench: 'relay', name: `anchor node:net pipe, ${pairs} pairs`, pairs, datagramBytes: DATAGRAM, ...pipe }));
    console.log(
      JSON.stringify({
        bench: 'relay',
        name: `sdnet relay, ${pairs} pairs`,
        pairs,
        datagramBytes: DATAGRAM,
        ...relay,
        ratioToForwarder: +(relay.datagramsPerSec / fwd.datagramsPerSec).toFixed(3),
        ratioToPipe: +(relay.datagramsPerSec / pipe.datagramsPerSec).toFixed(3),
        cpuRatioToForwarder: +(relay.serverCpuUsPerDatagram / fwd.serverCpuUsPerDatagram).toFixed(2),
      }),
    );
  }
  await memory(quick ? [1_000] : [1_000, 10_000]);
}

const [role, ...rest] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (role === 'server') await serverMain(rest[0] as Kind);
else if (role === 'load') await loadMain(rest[0] as Kind, Number(rest[1]), Number(rest[2]));
else if (role === 'idle') await idleMain(Number(rest[0]), Number(rest[1]));
else await main();
