/**
 * `sdnet demo` (what `npm start` runs): two devices on this machine, an embedded relay, a
 * message and a file. Everything is real: key files, the relay server, QUIC over UDP and
 * through the relay, SHA-256 of what arrived. It grows into the full Spacedrive-style demo
 * (pairing with a word code, messaging, file transfer protocols) as the device layer lands.
 *
 * `--size MIB` sets the file size (default 32).
 *
 * @module
 */
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandArgs } from './help.ts';
import { startRelayServer } from '../../relay-server/src/index.ts';
import { Endpoint, type Connection } from '../endpoint/index.ts';
import { EndpointAddr, EndpointTicket, loadOrCreateSecretKey } from '../identity/index.ts';
import { UsageError, type CliIo } from './io.ts';

const ALPN = 'sdnet/demo/1';
const MiB = 1024 * 1024;
const CHUNK = 256 * 1024;

/** A progress line: a bar on a terminal, a few milestones otherwise. */
class Progress {
  readonly #say: (text: string) => void;
  readonly #total: number;
  readonly #tty: boolean;
  readonly #started = performance.now();
  #lastQuarter = 0;
  #lastDraw = 0;

  constructor(say: (text: string) => void, total: number, tty: boolean) {
    this.#say = say;
    this.#total = total;
    this.#tty = tty;
  }

  update(done: number): void {
    const fraction = done / this.#total;
    const seconds = (performance.now() - this.#started) / 1000;
    const rate = seconds > 0 ? done / MiB / seconds : 0;
    const text = `${(done / MiB).toFixed(1).padStart(6)} / ${(this.#total / MiB).toFixed(1)} MiB  ${rate.toFixed(1).padStart(6)} MiB/s`;
    if (this.#tty) {
      const now = performance.now();
      if (now - this.#lastDraw < 50 && done < this.#total) return;
      this.#lastDraw = now;
      const width = 30;
      const filled = Math.round(fraction * width);
      this.#say(`\r   [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
      if (done >= this.#total) this.#say('\n');
      return;
    }
    const quarter = Math.floor(fraction * 4);
    if (quarter > this.#lastQuarter) {
      this.#lastQuarter = quarter;
      this.#say(`   ${String(quarter * 25).padStart(3)} %  ${text}\n`);
    }
  }
}

async function readExactly(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of readable) parts.push(chunk);
  return Buffer.concat(parts);
}

export async function demo(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('demo', { args, options: { size: { type: 'string' } }, allowPositionals: false });
  const sizeMiB = values.size === undefined ? 32 : Number(values.size);
  if (!Number.isFinite(sizeMiB) || sizeMiB <= 0 || sizeMiB > 4096) throw new UsageError('--size is a number of MiB between 0 and 4096');
  const size = Math.round(sizeMiB * MiB);
  const say = (line = '') => io.stdout(`${line}\n`);
  const write = (text: string) => io.stdout(text);
  const tty = io.stdoutIsTTY === true;
  const dir = await mkdtemp(join(tmpdir(), 'sdnet-demo-'));
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    say('sdnet demo — two devices, one relay, one file, over QUIC that iroh 1.0 speaks');
    say();

    const alice = (await loadOrCreateSecretKey(join(dir, 'alice.key'))).key;
    const bob = (await loadOrCreateSecretKey(join(dir, 'bob.key'))).key;
    const mode = ((await stat(join(dir, 'alice.key'))).mode & 0o777).toString(8);
    say(`1. Two devices create their identities (key files with mode ${mode}):`);
    say(`   alice ${alice.public().toString()}`);
    say(`   bob   ${bob.public().toString()}`);
    say();

    const relay = await startRelayServer({ host: '127.0.0.1', port: 0, rateLimit: false });
    cleanups.push(() => relay.close({ graceful: false }));
    say(`2. An sdnet relay starts on ${relay.url} (the same server as \`sdnet-relay\`).`);
    say();

    const a = await Endpoint.bind({ secretKey: alice, alpns: [ALPN], bindAddr: ['127.0.0.1:0'], relays: [relay.url] });
    cleanups.push(() => a.close({ graceMs: 200 }));
    const b = await Endpoint.bind({ secretKey: bob, bindAddr: ['127.0.0.1:0'], relays: [relay.url] });
    cleanups.push(() => b.close({ graceMs: 200 }));
    const home = await a.online({ signal: AbortSignal.any([io.signal, AbortSignal.timeout(10_000)]) });
    say(`3. Alice is online with home relay ${home.toString()}; her ticket:`);
    say(`   ${new EndpointTicket(a.addr()).toString()}`);
    say();

    // Alice: answer one message, then receive one file and report its hash.
    const served = (async () => {
      for await (const incoming of a.accept()) {
        const conn = await incoming.accept();
        const chat = await conn.acceptBi();
        const message = JSON.parse(new TextDecoder().decode(await readExactly(chat.readable))) as { text: string };
        const reply = chat.writable.getWriter();
        await reply.write(new TextEncoder().encode(JSON.stringify({ text: `hello Bob (you said: ${message.text})` })));
        await reply.close();
        const file = await conn.acceptBi();
        const hash = createHash('sha256');
        let received = 0;
        for await (const chunk of file.readable) {
          hash.update(chunk);
          received += chunk.length;
        }
        const answer = file.writable.getWriter();
        await answer.write(new TextEncoder().encode(JSON.stringify({ received, sha256: hash.digest('hex') })));
        await answer.close();
        return conn;
      }
      throw new Error('Alice stopped accepting');
    })();
    // If Bob's side fails first, Alice's side ends with the connection: not a second error.
    served.catch(() => undefined);

    const started = performance.now();
    const conn: Connection = await b.connect(EndpointAddr.from({ id: alice.public(), relayUrls: [home] }), ALPN, { signal: io.signal });
    say(`4. Bob dials Alice knowing only her id and relay: connected in ${(performance.now() - started).toFixed(1)} ms, via ${conn.stats().relayed ? 'the relay' : 'UDP'}.`);
    // Alice told Bob her direct addresses during the handshake; he moves there once one answers.
    const moveStart = performance.now();
    while (conn.stats().relayed && performance.now() - moveStart < 5_000) await new Promise((r) => setTimeout(r, 5));
    const path = conn.stats().relayed ? 'still the relay (no direct path answered)' : `direct UDP ${conn.path.key.replace(/^udp:/, '')}`;
    say(`   ${conn.stats().relayed ? '' : `after ${(performance.now() - moveStart).toFixed(1)} ms `}the connection runs on ${path}.`);
    say();

    const chat = await conn.openBi();
    const writer = chat.writable.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify({ text: 'hi Alice' })));
    await writer.close();
    const reply = JSON.parse(new TextDecoder().decode(await readExactly(chat.readable))) as { text: string };
    say(`5. Bob says "hi Alice"; Alice answers: "${reply.text}"`);
    say();

    // A file of random bytes on disk, sent from disk.
    const filePath = join(dir, 'holiday.bin');
    const fh = await open(filePath, 'w');
    const sentHash = createHash('sha256');
    for (let written = 0; written < size; ) {
      const n = Math.min(CHUNK, size - written);
      const block = randomFillSync(new Uint8Array(n));
      sentHash.update(block);
      await fh.write(block);
      written += n;
    }
    await fh.close();
    const expected = sentHash.digest('hex');
    say(`6. Bob sends ${filePath.split('/').pop()} (${sizeMiB} MiB):`);
    const file = await conn.openBi();
    const fileWriter = file.writable.getWriter();
    const progress = new Progress(write, size, tty);
    const src = await open(filePath, 'r');
    try {
      const buffer = new Uint8Array(CHUNK);
      for (let sent = 0; sent < size; ) {
        const { bytesRead } = await src.read(buffer, 0, Math.min(CHUNK, size - sent), sent);
        if (bytesRead === 0) break;
        await fileWriter.write(buffer.slice(0, bytesRead));
        sent += bytesRead;
        progress.update(sent);
      }
    } finally {
      await src.close();
    }
    await fileWriter.close();
    const result = JSON.parse(new TextDecoder().decode(await readExactly(file.readable))) as { received: number; sha256: string };
    const ok = result.received === size && result.sha256 === expected;
    say(`   Alice received ${result.received} bytes, SHA-256 ${result.sha256.slice(0, 16)}… ${ok ? 'matches' : 'DOES NOT MATCH'} what Bob sent.`);
    const s = conn.stats();
    say(`   connection: rtt ${s.rtt.toFixed(2)} ms, ${s.packetsSent} packets sent, ${s.lostPackets} lost, path changes ${s.pathChanges}, relay carried ${relay.stats().bytesRelayed} bytes.`);
    say();
    conn.close(0, 'done');
    await (await served).closed;
    say('Next: `sdnet pipe listen --relay URL` / `sdnet pipe connect <ticket>`, `sdnet-relay`, and the library API in README.md.');
    return ok ? 0 : 1;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
