/**
 * `sdnet pipe listen|connect`: a dumb pipe between the stdin/stdout of two processes over one
 * QUIC stream, speaking iroh's dumbpipe protocol, so either side can be `dumbpipe`.
 *
 * The protocol: ALPN `DUMBPIPEV0`; the connecting side opens one bidirectional stream and
 * first writes the 5 bytes `hello`; the listening side reads and checks them. Then the
 * connector's stdin flows to the listener's stdout and the listener's stdin to the
 * connector's stdout; the end of stdin finishes (FIN) that direction, and each side exits
 * once both directions are done.
 *
 * stdout carries only the data; tickets and messages go to stderr.
 *
 * @module
 */
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { parseCommandArgs } from './help.ts';
import { ConnectionError, Endpoint, StreamResetError, describePath, type Connection, type Incoming } from '../endpoint/index.ts';
import { EndpointTicket, RelayUrl, SecretKey, SocketAddr, loadSecretKey, type PublicKey } from '../identity/index.ts';
import { DEFAULT_CONNECTION_SETTINGS } from '../transport/quic/config.ts';
import { concatBytes, equalBytes, utf8 } from '../util/bytes.ts';
import { SdnetError } from '../util/errors.ts';
import { UsageError, type CliIo } from './io.ts';
import { attachMdns } from '../discovery/attach.ts';
import { parseKeyAnyForm } from '../discovery/pkarr.ts';

/** dumbpipe's ALPN. */
export const DUMBPIPE_ALPN = 'DUMBPIPEV0';
/** What the connecting side writes first on the stream. */
export const DUMBPIPE_HANDSHAKE = utf8('hello');

/** Application close codes we send: 0 when both directions completed, 1 otherwise (the reason says why). */
const CLOSE_DONE = 0;
const CLOSE_ERROR = 1;

const USAGE = 'usage: sdnet pipe listen [--key FILE] [--bind ADDR]... [--relay URL]... | sdnet pipe connect <ticket> [--key FILE] [--bind ADDR]... [--relay URL]...';
/** How long `listen` waits for its home relay before printing a ticket without it. */
const ONLINE_WAIT_MS = 10_000;

/** The byte streams a pipe copies; the process's stdin/stdout unless a caller passes others. */
export interface PipeStdio {
  stdin?: Readable;
  stdout?: Writable;
}

export async function pipe(args: string[], io: CliIo, stdio: PipeStdio = {}): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'listen') return listen(rest, io, stdio);
  if (sub === 'connect') return connect(rest, io, stdio);
  throw new UsageError(USAGE);
}

// ------------------------------------------------------------------ options

const OPTIONS = { key: { type: 'string', short: 'k' }, bind: { type: 'string', multiple: true }, relay: { type: 'string', multiple: true } } as const;

/** `--key FILE`, else `IROH_SECRET` (as dumbpipe), else a fresh key for this run. */
async function secretKeyFor(keyPath: string | undefined, env: NodeJS.ProcessEnv): Promise<SecretKey> {
  if (keyPath !== undefined) return loadSecretKey(resolve(keyPath));
  const fromEnv = env.IROH_SECRET?.trim();
  if (fromEnv) {
    try {
      return SecretKey.fromString(fromEnv);
    } catch (err) {
      throw new UsageError(`IROH_SECRET is not a secret key (64 hex characters): ${(err as Error).message}`);
    }
  }
  return SecretKey.generate();
}

/** `--bind` values, checked here so a typo is a usage error (exit 2), not a bind failure. */
function bindAddrs(values: string[] | undefined): string[] | undefined {
  if (values === undefined || values.length === 0) return undefined;
  for (const v of values) SocketAddr.parse(v);
  return values;
}

/**
 * `--relay URL` (repeatable), else `SDNET_RELAY` (URLs separated by commas or spaces): the
 * relays to choose a home relay from. Checked here so a typo is a usage error.
 */
function relayUrls(values: string[] | undefined, env: NodeJS.ProcessEnv): RelayUrl[] {
  const fromEnv = env.SDNET_RELAY?.trim();
  const list = values !== undefined && values.length > 0 ? values : fromEnv ? fromEnv.split(/[\s,]+/).filter((u) => u !== '') : [];
  return list.map((u) => {
    let url: RelayUrl;
    try {
      url = RelayUrl.parse(u);
    } catch {
      throw new UsageError(`not a relay URL: "${u.slice(0, 200)}"`);
    }
    const scheme = url.toURL().protocol;
    if (scheme !== 'http:' && scheme !== 'https:') throw new UsageError(`a relay URL is http:// or https://, not "${u.slice(0, 200)}"`);
    return url;
  });
}

/** `SDNET_CONNECT_TIMEOUT_MS`: how long the QUIC handshake may take (default 10 s). */
function handshakeTimeout(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.SDNET_CONNECT_TIMEOUT_MS;
  if (text === undefined || text === '') return undefined;
  const ms = Number(text);
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new UsageError(`SDNET_CONNECT_TIMEOUT_MS must be a positive number of milliseconds, not "${text}"`);
  return ms;
}

// ------------------------------------------------------------------ listen

async function listen(args: string[], io: CliIo, stdio: PipeStdio): Promise<number> {
  const { values } = parseCommandArgs('pipe listen', { args, options: OPTIONS, allowPositionals: false });
  const bindAddr = bindAddrs(values.bind);
  const relays = relayUrls(values.relay, io.env);
  const secretKey = await secretKeyFor(values.key, io.env);
  io.signal.throwIfAborted();
  // QUIC address discovery against the relays (as iroh): behind a NAT, the peer can punch to our public address.
  const ep = await Endpoint.bind({ secretKey, alpns: [DUMBPIPE_ALPN], ...(bindAddr ? { bindAddr } : {}), relays, qad: true });
  try {
    if (relays.length > 0) await waitOnline(ep, io);
    const ticket = new EndpointTicket(ep.addr()).toString();
    // The bare ticket is the last line (scripts and dumbpipe's own tests read it there).
    io.stderr(`Listening as ${ep.id.fmtShort()} (ALPN ${DUMBPIPE_ALPN}). To connect, use:\nsdnet pipe connect ${ticket}\nTicket (dumbpipe connect takes it too):\n${ticket}\n`);
    const incoming = ep.accept({ signal: io.signal })[Symbol.asyncIterator]();
    let session: Session | undefined;
    while (session === undefined) {
      let next: IteratorResult<Incoming>;
      try {
        next = await incoming.next();
      } catch (err) {
        throw failure(err, io.signal);
      }
      if (next.done) throw new SdnetError('ERR_PIPE', 'endpoint closed before a peer connected');
      session = await acceptSession(next.value, io);
    }
    // Only the first good connection is piped; later ones are turned away.
    void (async () => {
      for (;;) {
        const r = await incoming.next();
        if (r.done) return;
        r.value.refuse();
      }
    })().catch(() => {});
    io.stderr(`sdnet pipe: connection from ${session.conn.remoteId.fmtShort()}\n`);
    reportPathChanges(session.conn, io);
    await runPipe(session, io, stdio);
    return 0;
  } finally {
    await ep.close();
  }
}

/**
 * Wait (a while) for the home relay so the ticket carries its URL; a relay that does not
 * answer is reported, and the ticket then holds what we have (the client keeps retrying).
 */
async function waitOnline(ep: Endpoint, io: CliIo): Promise<void> {
  const signal = AbortSignal.any([io.signal, AbortSignal.timeout(ONLINE_WAIT_MS)]);
  try {
    await ep.online({ signal });
  } catch (err) {
    if (io.signal.aborted) throw failure(err, io.signal);
    const home = ep.homeRelay;
    io.stderr(`sdnet pipe: ${home ? `relay ${home.toString()} does not answer yet` : 'no relay answers yet'} (still trying); the ticket ${home ? 'names it anyway' : 'has direct addresses only'}\n`);
  }
}

/** One connection's handshake and `hello`; undefined (after a note on stderr) if it fails. */
async function acceptSession(incoming: Incoming, io: CliIo): Promise<Session | undefined> {
  let conn: Connection;
  try {
    conn = await incoming.accept({ signal: io.signal });
  } catch (err) {
    if (io.signal.aborted) throw failure(err, io.signal);
    io.stderr(`sdnet pipe: ignoring a connection attempt: ${firstLine(err)}\n`);
    return undefined;
  }
  const peer = conn.remoteId.fmtShort();
  try {
    const bi = await conn.acceptBi({ signal: io.signal });
    const reader = bi.readable.getReader();
    const leftover = await readHandshake(reader);
    return { conn, reader, writer: bi.writable.getWriter(), leftover };
  } catch (err) {
    conn.close(CLOSE_ERROR, io.signal.aborted ? 'interrupted' : 'invalid handshake');
    if (io.signal.aborted) throw failure(err, io.signal);
    io.stderr(`sdnet pipe: ignoring ${peer}: ${err instanceof SdnetError && err.code === 'ERR_PIPE_HANDSHAKE' ? err.message : describe(err, peer)}\n`);
    return undefined;
  }
}

/** Read dumbpipe's 5-byte `hello`; returns whatever data came after it. */
async function readHandshake(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  while (size < DUMBPIPE_HANDSHAKE.length) {
    const { value, done } = await reader.read();
    if (done) throw new SdnetError('ERR_PIPE_HANDSHAKE', 'stream ended before the dumbpipe handshake');
    parts.push(value);
    size += value.length;
  }
  const all = parts.length === 1 ? parts[0]! : concatBytes(...parts);
  if (!equalBytes(all.subarray(0, DUMBPIPE_HANDSHAKE.length), DUMBPIPE_HANDSHAKE)) throw new SdnetError('ERR_PIPE_HANDSHAKE', 'invalid dumbpipe handshake (expected "hello")');
  return all.subarray(DUMBPIPE_HANDSHAKE.length);
}

/** One stderr line whenever the connection moves: `path: direct 203.0.113.2:4000` / `path: relay <url>`. */
function reportPathChanges(conn: Connection, io: CliIo): void {
  conn.on('path-changed', (e) => io.stderr(`path: ${describePath(e.path)}\n`));
}

// ------------------------------------------------------------------ connect

async function connect(args: string[], io: CliIo, stdio: PipeStdio): Promise<number> {
  const { values, positionals } = parseCommandArgs('pipe connect', { args, options: OPTIONS, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError('usage: sdnet pipe connect <ticket|EndpointId> [--key FILE] [--bind ADDR]... [--relay URL]...');
  const target = pipeTarget(positionals[0]!.trim());
  const timeout = handshakeTimeout(io.env);
  const bindAddr = bindAddrs(values.bind);
  const relays = relayUrls(values.relay, io.env);
  const secretKey = await secretKeyFor(values.key, io.env);
  io.signal.throwIfAborted();
  const peer = target instanceof EndpointTicket ? target.addr.id : target;
  const ep = await Endpoint.bind({ secretKey, ...(bindAddr ? { bindAddr } : {}), relays, qad: true });
  // Dialling by id alone: the LAN is asked too (the relays' pkarr is built in).
  if (!(target instanceof EndpointTicket)) await attachMdns(ep);
  try {
    let conn: Connection;
    try {
      conn = await ep.connect(target instanceof EndpointTicket ? target.addr : target, DUMBPIPE_ALPN, { signal: io.signal, ...(timeout !== undefined ? { settings: { handshakeTimeout: timeout } } : {}) });
    } catch (err) {
      if (io.signal.aborted) throw failure(err, io.signal);
      throw new SdnetError('ERR_PIPE_UNREACHABLE', `cannot reach ${peer.fmtShort()}: ${unreachableReason(err, timeout ?? DEFAULT_CONNECTION_SETTINGS.handshakeTimeout)}`, { cause: err });
    }
    let session: Session;
    try {
      const bi = await conn.openBi({ signal: io.signal });
      session = { conn, reader: bi.readable.getReader(), writer: bi.writable.getWriter(), leftover: new Uint8Array(0) };
    } catch (err) {
      conn.close(CLOSE_ERROR, io.signal.aborted ? 'interrupted' : 'cannot open a stream');
      throw failure(err, io.signal, peer);
    }
    io.stderr(`sdnet pipe: connected to ${peer.fmtShort()}\n`);
    reportPathChanges(conn, io);
    await runPipe(session, io, stdio, DUMBPIPE_HANDSHAKE);
    return 0;
  } finally {
    await ep.close();
  }
}

/** A ticket, else an EndpointId alone (hex, z-base-32 or base32): dialled through the lookups. */
function pipeTarget(text: string): EndpointTicket | PublicKey {
  try {
    return EndpointTicket.parse(text);
  } catch (err) {
    try {
      return parseKeyAnyForm(text);
    } catch {
      throw err;
    }
  }
}

function unreachableReason(err: unknown, timeoutMs: number): string {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case 'ERR_QUIC_HANDSHAKE_TIMEOUT':
      return `no answer within ${timeoutMs / 1000} s (handshake timed out)`;
    case 'ERR_TLS_PEER_ID_MISMATCH':
      return 'the peer there has another EndpointId than the ticket';
    case 'ERR_TLS_NO_ALPN':
      return `the peer does not speak ${DUMBPIPE_ALPN}`;
    case 'ERR_NO_ADDRESS':
      return (err as Error).message.startsWith('No lookup') ? `${(err as Error).message}; give --relay URL of a relay it publishes to` : 'the ticket has no address we can use (no relay URL, and no direct address of a family we have a socket for)';
    default:
      return firstLine(err);
  }
}

// ------------------------------------------------------------------ the pipe

interface Session {
  conn: Connection;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Data that arrived with the handshake, for stdout first. */
  leftover: Uint8Array;
}

/**
 * Copy stdin → stream and stream → stdout until both directions are done, then close the
 * connection (code 0). If either direction fails, or the signal fires, the connection closes
 * with code 1 and the first error is thrown.
 */
async function runPipe(s: Session, io: CliIo, stdio: PipeStdio, first?: Uint8Array): Promise<void> {
  const stdin = stdio.stdin ?? process.stdin;
  const stdout = stdio.stdout ?? process.stdout;
  const peer = s.conn.remoteId;
  const halt = new AbortController();
  let failed: { err: unknown } | undefined;
  const stop = (err: unknown, reason: string) => {
    if (failed !== undefined) return;
    failed = { err };
    halt.abort();
    s.conn.close(CLOSE_ERROR, reason);
    if (!stdin.readableEnded) stdin.destroy();
  };
  const onAbort = () => stop(io.signal.reason, 'interrupted');
  io.signal.addEventListener('abort', onAbort, { once: true });
  try {
    if (io.signal.aborted) onAbort();
    await Promise.all([
      sendStdin(stdin, s.writer, first, halt.signal).catch((err: unknown) => stop(err, `send failed: ${firstLine(err)}`.slice(0, 200))),
      recvToStdout(s.reader, s.leftover, stdout, halt.signal).catch((err: unknown) => stop(err, `receive failed: ${firstLine(err)}`.slice(0, 200))),
    ]);
  } finally {
    io.signal.removeEventListener('abort', onAbort);
    if (!stdin.readableEnded) stdin.destroy();
  }
  if (failed !== undefined) throw failure(failed.err, io.signal, peer);
  await closeAndLinger(s.conn, CLOSE_DONE, 'done');
}

/** stdin → stream, then FIN; resolves once the peer has acknowledged everything. */
async function sendStdin(stdin: Readable, writer: WritableStreamDefaultWriter<Uint8Array>, first: Uint8Array | undefined, halt: AbortSignal): Promise<void> {
  if (first !== undefined) await writer.write(first);
  const chunks = stdin[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<unknown>;
    try {
      next = await chunks.next();
    } catch (err) {
      if (halt.aborted) return;
      throw new SdnetError('ERR_PIPE_STDIN', `cannot read stdin: ${firstLine(err)}`, { cause: err });
    }
    if (next.done) break;
    if (halt.aborted) return;
    const chunk = next.value;
    await writer.write(typeof chunk === 'string' ? utf8(chunk) : (chunk as Uint8Array));
  }
  try {
    await writer.close();
  } catch (err) {
    // The peer closed with code 0 after our FIN: it read everything (it closes only when both
    // of its directions are done), it just did so before its last ACK reached us.
    if (err instanceof ConnectionError && err.remote && err.kind === 'application' && err.applicationCode === CLOSE_DONE) return;
    throw err;
  }
}

/** stream → stdout, respecting stdout's backpressure, until the peer's FIN. */
async function recvToStdout(reader: ReadableStreamDefaultReader<Uint8Array>, leftover: Uint8Array, stdout: Writable, halt: AbortSignal): Promise<void> {
  const out = new Output(stdout, halt);
  if (leftover.length > 0) await out.write(leftover);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    await out.write(value);
  }
  await out.drained();
}

/** Writes to a Node writable, waiting for 'drain' when it asks to, and turning 'error' into a rejection. */
class Output {
  readonly #out: Writable;
  readonly #halt: AbortSignal;
  #error: Error | undefined;

  constructor(out: Writable, halt: AbortSignal) {
    this.#out = out;
    this.#halt = halt;
    // Kept for the life of the process: a late EPIPE must not become an uncaught exception.
    out.on('error', (err: Error) => {
      this.#error ??= err;
    });
  }

  #check(): void {
    if (this.#error) throw new SdnetError('ERR_PIPE_STDOUT', `cannot write to stdout: ${this.#error.message}`, { cause: this.#error });
    this.#halt.throwIfAborted();
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#check();
    if (!this.#out.write(chunk)) await this.drained();
    this.#check();
  }

  /** Resolves when the writable's buffer is below its high-water mark again. */
  async drained(): Promise<void> {
    if (!this.#out.writableNeedDrain) return this.#check();
    await new Promise<void>((done) => {
      const finish = () => {
        this.#out.off('drain', finish);
        this.#out.off('error', finish);
        this.#out.off('close', finish);
        this.#halt.removeEventListener('abort', finish);
        done();
      };
      this.#out.on('drain', finish);
      this.#out.on('error', finish);
      this.#out.on('close', finish);
      this.#halt.addEventListener('abort', finish, { once: true });
    });
    this.#check();
  }
}

/**
 * Close the connection, then keep the endpoint up for about three PTOs (RFC 9000 §10.2: the
 * closing state) so a peer whose last packets were lost gets the CONNECTION_CLOSE again
 * instead of waiting for its idle timeout. Nothing to wait for if the peer closed first.
 */
async function closeAndLinger(conn: Connection, code: number, reason: string): Promise<void> {
  conn.close(code, reason);
  const why = await conn.closed;
  if (why.remote) return;
  const rtt = conn.stats().rtt;
  const ms = Math.min(1000, Math.max(30, 3 * (2 * (Number.isFinite(rtt) ? rtt : 100) + 25)));
  await new Promise((r) => setTimeout(r, ms));
}

// ------------------------------------------------------------------ errors

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

/** An error as the one line the user sees (main.ts prefixes `sdnet pipe: `). */
function describe(err: unknown, peer: string): string {
  if (err instanceof ConnectionError) {
    if (err.remote && err.kind === 'application') {
      const why = err.reason ? `: ${err.reason}` : '';
      return `${peer} closed the connection (code ${err.applicationCode ?? 0}${why}) before the pipe was done`;
    }
    if (err.remote) return `connection to ${peer} failed: ${err.message}`;
    if (err.kind === 'idle-timeout') return `lost the connection to ${peer} (idle timeout)`;
    return `connection to ${peer} failed: ${err.message}`;
  }
  if (err instanceof StreamResetError) {
    return err.code === 'ERR_STREAM_RESET' ? `${peer} reset the stream (code ${err.streamCode})` : `${peer} stopped reading (code ${err.streamCode})`;
  }
  return firstLine(err);
}

/** The error the command throws: `interrupted` on Ctrl-C, else a one-line SdnetError (exit 1). */
function failure(err: unknown, signal: AbortSignal, peer?: PublicKey): SdnetError {
  if (signal.aborted) return new SdnetError('ERR_INTERRUPTED', 'interrupted');
  if (err instanceof SdnetError && err.code.startsWith('ERR_PIPE')) return err;
  return new SdnetError('ERR_PIPE', describe(err, peer?.fmtShort() ?? 'the peer'), { cause: err });
}
