/**
 * Test-only: Cloudflare's quiche (Rust, BoringSSL — another lineage than iroh/quinn), through
 * the N-API binding that `@matrixai/quic` ships, wired in-process to an sdnet `QuicEndpoint`.
 * quiche's connection API is itself sans-IO (recv / send / timeout), so datagrams move between
 * the two stacks directly; a test can drop, delay or re-address any of them. quiche keeps its
 * own clock (real time), so the loop runs in real time and sdnet's clock is read from it.
 */
import type { Quiche } from '@matrixai/quic/native/quiche.js';
import type { Config as QConfig, Connection as QConnection, Host } from '@matrixai/quic/native/types.js';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import type { PathAddr } from '../../src/transport/quic/connection/types.ts';
import type { QuicEndpoint } from '../../src/transport/quic/endpoint.ts';

/** quiche, or why it cannot be loaded here. */
export async function loadQuiche(): Promise<{ quiche: Quiche; reason?: undefined } | { quiche?: undefined; reason: string }> {
  try {
    const mod = (await import('@matrixai/quic/native/quiche.js')) as { default: Quiche };
    if (typeof mod.default?.Connection?.connect !== 'function') return { reason: '@matrixai/quic loaded without its native quiche binding' };
    return { quiche: mod.default };
  } catch (err) {
    return { reason: `quiche (@matrixai/quic's native binding) is not available on ${process.platform}-${process.arch}: ${(err as Error).message}` };
  }
}

export interface QuicheConfigOptions {
  alpn: string;
  certPem?: string;
  keyPem?: string;
  /** Verify the sdnet peer's chain against this CA (BoringSSL's own verification). */
  caPem?: string;
  /** Ask for / check the peer's certificate. With `allowFail` the chain is only recorded. */
  verifyPeer: boolean;
  allowFail?: boolean;
  maxData?: number;
  streamWindow?: number;
  streams?: number;
  idleMs?: number;
  dgram?: boolean;
}

export function quicheConfig(q: Quiche, o: QuicheConfigOptions): QConfig {
  const enc = (s: string) => new TextEncoder().encode(s);
  const config = q.Config.withBoringSslCtx(
    o.verifyPeer,
    o.allowFail ?? false,
    o.caPem ? enc(o.caPem) : null,
    o.keyPem ? [enc(o.keyPem)] : null,
    o.certPem ? [enc(o.certPem)] : null,
    'ed25519:ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256:rsa_pkcs1_sha256',
  );
  config.setApplicationProtos([o.alpn]);
  config.setMaxIdleTimeout(o.idleMs ?? 30_000);
  config.setMaxRecvUdpPayloadSize(1500);
  config.setMaxSendUdpPayloadSize(1350);
  config.setInitialMaxData(o.maxData ?? 16 * 1024 * 1024);
  config.setInitialMaxStreamDataBidiLocal(o.streamWindow ?? 1024 * 1024);
  config.setInitialMaxStreamDataBidiRemote(o.streamWindow ?? 1024 * 1024);
  config.setInitialMaxStreamDataUni(o.streamWindow ?? 1024 * 1024);
  config.setInitialMaxStreamsBidi(o.streams ?? 100);
  config.setInitialMaxStreamsUni(o.streams ?? 100);
  config.setMaxStreamWindow(o.streamWindow ?? 1024 * 1024);
  config.setMaxConnectionWindow(o.maxData ?? 16 * 1024 * 1024);
  config.enableDgram(o.dgram ?? true, 64, 64);
  config.setDisableActiveMigration(false);
  return config;
}

/** How sdnet addresses the quiche peer, and how quiche sees sdnet. */
export const QUICHE_PATH: PathAddr = { key: 'quiche', host: '10.0.0.1' };
const QUICHE_HOST: Host = { host: '127.0.0.1', port: 4433 };

const nowUs = () => Math.round(performance.now() * 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The stream-level error quiche throws, parsed (`StreamReset(7)`, `StreamStopped(7)`, `Done`, ...). */
export function quicheError(err: unknown): { kind: string; code?: number } {
  const m = /^(\w+)(?:\((\d+)\))?/.exec((err as Error)?.message ?? '');
  return m ? { kind: m[1]!, ...(m[2] !== undefined ? { code: Number(m[2]) } : {}) } : { kind: String(err) };
}

export interface LinkOptions {
  q: Quiche;
  ours: QuicEndpoint;
  /** quiche's role. */
  role: 'client' | 'server';
  config: QConfig;
  /** quiche server: answer the first Initial with a Retry (RFC 9000 §8.1.2). */
  retry?: boolean;
  /** Drop the i-th datagram from sdnet to quiche (or back). */
  dropToQuiche?: (i: number, d: Uint8Array) => boolean;
  dropToOurs?: (i: number, d: Uint8Array) => boolean;
  /** Server name quiche sends as a client. */
  serverName?: string;
}

/** One sdnet endpoint and one quiche connection, moving datagrams between them in real time. */
export class QuicheLink {
  readonly q: Quiche;
  readonly ours: QuicEndpoint;
  readonly role: 'client' | 'server';
  readonly config: QConfig;
  qconn: QConnection | undefined;
  /** The sdnet-side connection (dialled, or the first one accepted). */
  conn: Connection | undefined;
  /** Where quiche believes the sdnet peer is (change it to simulate NAT rebinding). */
  oursAddr: Host = { host: '127.0.0.2', port: 4434 };
  /** The path sdnet receives quiche's datagrams on (change it to rebind quiche's address). */
  quichePath: PathAddr = QUICHE_PATH;
  /** Datagrams each way, as sent (before drops). */
  readonly toQuiche: Uint8Array[] = [];
  readonly toOurs: Uint8Array[] = [];
  retries = 0;
  readonly #options: LinkOptions;
  #qDeadline = Infinity;
  readonly #buf = new Uint8Array(65536);
  /** Per-step application hook (quiche's side of a test usually lives here). */
  onStep: (() => void) | undefined;

  constructor(options: LinkOptions) {
    this.q = options.q;
    this.ours = options.ours;
    this.role = options.role;
    this.config = options.config;
    this.#options = options;
    if (options.role === 'client') {
      const scid = nodeCryptoProvider.randomBytes(16);
      this.qconn = this.q.Connection.connect(options.serverName ?? 'localhost', scid, QUICHE_HOST, this.oursAddr, this.config);
      this.#armQuiche();
    }
  }

  #armQuiche(): void {
    const t = this.qconn?.timeout();
    this.#qDeadline = t === null || t === undefined ? Infinity : performance.now() + t;
  }

  /** A datagram reaches quiche (accepting or answering with a Retry when quiche is a server). */
  #toQuiche(data: Uint8Array): void {
    if (this.qconn === undefined) {
      let header;
      try {
        header = this.q.Header.fromSlice(data, 16);
      } catch {
        return;
      }
      if (header.ty !== this.q.Type.Initial) return;
      let odcid: Uint8Array | null = null;
      if (this.#options.retry) {
        const token = header.token ?? new Uint8Array(0);
        if (token.length === 0) {
          // Token = "retry" ‖ original DCID: enough for a test, where addresses cannot be spoofed.
          const newScid = nodeCryptoProvider.randomBytes(16);
          const t = new Uint8Array([...new TextEncoder().encode('retry'), ...header.dcid]);
          const n = this.q.retry(header.scid, header.dcid, newScid, t, header.version, this.#buf);
          this.retries++;
          this.#deliverToOurs(this.#buf.slice(0, n));
          return;
        }
        odcid = token.slice(5);
      }
      this.qconn = this.q.Connection.accept(header.dcid, odcid, QUICHE_HOST, this.oursAddr, this.config);
    }
    try {
      this.qconn!.recv(data, { from: { ...this.oursAddr }, to: QUICHE_HOST });
    } catch {
      // quiche drops what it cannot use (its errors close the connection by themselves).
    }
    this.#armQuiche();
  }

  #deliverToOurs(d: Uint8Array): void {
    const i = this.toOurs.push(d) - 1;
    if (this.#options.dropToOurs?.(i, d)) return;
    this.ours.handleDatagram(nowUs(), this.quichePath, d.slice());
    for (let c = this.ours.pollIncoming(); c !== undefined; c = this.ours.pollIncoming()) this.conn ??= c;
  }

  /** One round: timers, then every datagram both ways. True if anything moved. */
  step(): boolean {
    let moved = false;
    const now = nowUs();
    const t = this.ours.pollTimeout();
    if (t !== undefined && t <= now) this.ours.handleTimeout(now);
    if (this.qconn && performance.now() >= this.#qDeadline) {
      this.qconn.onTimeout();
      this.#armQuiche();
    }
    this.onStep?.();
    for (let tx = this.ours.pollTransmit(nowUs()); tx !== undefined; tx = this.ours.pollTransmit(nowUs())) {
      moved = true;
      const d = tx.data.slice();
      const i = this.toQuiche.push(d) - 1;
      if (!this.#options.dropToQuiche?.(i, d)) this.#toQuiche(d);
    }
    for (let guard = 0; this.qconn && guard < 10_000; guard++) {
      let out;
      try {
        out = this.qconn.send(this.#buf);
      } catch {
        break;
      }
      if (out === null) break;
      moved = true;
      this.#deliverToOurs(this.#buf.slice(0, out[0]));
    }
    this.#armQuiche();
    return moved;
  }

  /** Run until `done()` (checked every round), or fail after `ms` with `what`. */
  async until(done: () => boolean, ms: number, what: string): Promise<void> {
    const end = performance.now() + ms;
    let spins = 0;
    while (!done()) {
      if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; sdnet: ${this.conn?.state} ${this.conn?.closeError?.message ?? ''}; quiche: ${this.describeQuiche()}`);
      if (this.step()) {
        // Let other tasks run now and then, without sleeping while data flows.
        if (++spins % 64 === 0) await new Promise((r) => setImmediate(r));
        continue;
      }
      const ourNext = this.ours.pollTimeout();
      const waitMs = Math.min(ourNext === undefined ? 5 : Math.max(0, (ourNext - nowUs()) / 1000), this.#qDeadline - performance.now(), 5);
      await sleep(Math.max(0, Math.floor(waitMs)));
    }
  }

  describeQuiche(): string {
    const c = this.qconn;
    if (c === undefined) return 'no connection';
    const err = (e: { isApp: boolean; errorCode: number; reason: Uint8Array } | null) => (e ? `${e.isApp ? 'app' : 'transport'} 0x${e.errorCode.toString(16)} ${new TextDecoder().decode(e.reason)}` : 'none');
    return `established=${c.isEstablished()} closed=${c.isClosed()} draining=${c.isDraining()} timedOut=${c.isTimedOut()} localError=${err(c.localError())} peerError=${err(c.peerError())}`;
  }

  // ---- quiche-side application helpers

  /** Read everything readable on quiche's streams into `sink` (per stream), noting FINs and resets. */
  drainQuiche(sink: Map<number, { bytes: number; chunks: Uint8Array[]; fin: boolean; reset?: number }>, keep = true): void {
    const c = this.qconn;
    if (!c) return;
    for (const id of c.readable()) {
      const s = sink.get(id) ?? { bytes: 0, chunks: [], fin: false };
      sink.set(id, s);
      for (;;) {
        let r;
        try {
          r = c.streamRecv(id, this.#buf);
        } catch (err) {
          const e = quicheError(err);
          if (e.kind === 'StreamReset') s.reset = e.code;
          break;
        }
        if (r === null) break;
        const [n, fin] = r;
        s.bytes += n;
        if (keep) s.chunks.push(this.#buf.slice(0, n));
        if (fin) s.fin = true;
        if (n === 0) break;
      }
    }
  }

  /** Send as much of `data` from `offset` as quiche takes now on stream `id`; returns the new offset. */
  sendQuiche(id: number, data: Uint8Array, offset: number, fin: boolean): number {
    const c = this.qconn;
    if (!c || offset > data.length) return offset;
    try {
      const n = c.streamSend(id, data.subarray(offset), fin);
      return offset + (n ?? 0) + (fin && offset + (n ?? 0) === data.length ? 1 : 0);
    } catch {
      return offset;
    }
  }
}
