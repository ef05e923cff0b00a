/**
 * File transfer (`sdnet/xfer/1`, paired devices only), both halves, as the service's transfer
 * module (pairing-transfer.md B.3; issue 14).
 *
 * Receiver-pulled: the sender opens a control stream and offers a manifest; the receiver
 * accepts (policy: accept, ask, refuse) with a fresh salt, then opens its own streams on the
 * same connection to pull tables and chunks (see receiver.ts). The sender keeps no state on
 * disk: it serves what is asked while its `share` runs, and if the receiver goes away it
 * waits and offers again — the receiver resumes where it stopped.
 *
 * @module
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { PublicKey } from '../../identity/keys.ts';
import { defaultCryptoProvider, type Aead, type CryptoProvider } from '../../transport/crypto/index.ts';
import type { ConnectionContext, DeviceProtocol, ProtocolLimits } from '../../service/protocol-registry.ts';
import type { DeviceSnapshot } from '../../service/device-registry.ts';
import type { ModuleContext, TransferModule, TransferResult } from '../../service/modules.ts';
import { SdnetError } from '../../util/errors.ts';
import { delay } from '../../util/abort.ts';
import { StreamCode } from '../codes.ts';
import { FrameReader, FrameWriter, StreamProtocolError } from '../framing.ts';
import type { FramedStream } from '../stream.ts';
import { TransferError } from './errors.ts';
import { Incoming, InterruptedError } from './receiver.ts';
import { buildSource, type Source } from './source.ts';
import { loadOffer, removeTransferDir, transferDir } from './state.ts';
import {
  XFER_ALPN,
  XFER_DEFAULT_CHUNK_SIZE,
  XFER_IDLE_TIMEOUT_MS,
  XFER_MAX_CHUNK_SIZE,
  XFER_MAX_CONCURRENT_STREAMS,
  XFER_MAX_CONTROL_BYTES,
  XFER_MAX_FINISHED,
  XFER_MAX_MANIFEST_BYTES,
  XFER_MAX_TRANSFERS_PER_PEER,
  XFER_MIN_CHUNK_SIZE,
  XFER_PROGRESS_INTERVAL_MS,
  XFER_PULL_STREAMS,
} from './limits.ts';
import {
  CHUNK_HEADER_BYTES,
  FRAME_TABLE,
  HASH_BYTES,
  SALT_BYTES,
  TAG_BYTES,
  chunkAead,
  chunkCount,
  decodeControl,
  deriveChunkKey,
  encodeControl,
  fromHex,
  sealChunkInPlace,
  toHex,
  type ControlMessage,
  type Manifest,
  type ManifestEntry,
} from './wire.ts';

/** A transfer as `sdnet transfers` lists it. */
export interface TransferInfo {
  readonly id: string;
  readonly direction: 'send' | 'receive';
  readonly peer: { readonly endpointId: string; readonly name: string | null };
  /** `hashing`, `offered`, `waiting` (the peer is away), `transferring`, `paused`, `verifying`, `completed`, `failed`, `cancelled`. */
  readonly state: string;
  readonly files: number;
  readonly filesDone: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  readonly paused?: readonly string[];
  readonly error?: { readonly code: string; readonly message: string };
  /** Receive: where the files go. */
  readonly dest?: string;
}

/** An offer waiting for the user's answer (policy `ask`). */
export interface OfferInfo {
  readonly id: string;
  readonly peer: { readonly endpointId: string; readonly name: string | null };
  readonly files: number;
  readonly bytes: number;
  readonly paths: readonly string[];
}

export interface TransferModuleOptions {
  /** What to do with an offer from a paired device: `accept` (default), `refuse`, or `ask`. */
  policy?: 'accept' | 'refuse' | 'ask';
  /** Devices (EndpointId hex) whose offers are accepted without asking under `ask`. */
  autoAcceptFrom?: readonly string[];
  /** Under `ask`: the answer (default: refuse). */
  ask?: (offer: OfferInfo) => boolean | Promise<boolean>;
  /** Chunk size of what we send (a power of two, 64 KiB – 16 MiB; default 1 MiB). */
  chunkSize?: number;
  /** Streams the receiver pulls on (default 4). */
  pullStreams?: number;
  provider?: CryptoProvider;
}

/** Options of `share`. */
export interface ShareOptions {
  signal?: AbortSignal;
  /** Give up after this long (ms; default 10 minutes), waiting for the receiver included. */
  timeoutMs?: number;
  /** Called with the transfer id once the files are hashed and offered. */
  onStart?: (transferId: string) => void;
  [k: string]: unknown;
}

const FINAL_CODES = new Set(['ERR_TRANSFER_REFUSED', 'ERR_TRANSFER_CANCELLED', 'ERR_TRANSFER_SOURCE_CHANGED', 'ERR_TRANSFER_CORRUPT', 'ERR_TRANSFER_TABLE_MISMATCH', 'ERR_TRANSFER_MANIFEST', 'ERR_TRANSFER_PATH', 'ERR_TRANSFER_FAILED', 'ERR_TRANSFER_MALFORMED', 'ERR_TRANSFER_BUSY', 'ERR_TRANSFER_TIMEOUT']);

function asStreamError(err: unknown): unknown {
  if (err instanceof TransferError) return new StreamProtocolError(err.code, StreamCode.MALFORMED_MESSAGE, err.message);
  return err;
}

/** The transfer id: the same files offered again (same paths, kinds, sizes) between the same devices resume. */
function transferIdFor(sender: PublicKey, receiver: PublicKey, entries: readonly ManifestEntry[], chunkSize: number, provider: CryptoProvider): string {
  const h = provider.hasher('sha256');
  h.update(new TextEncoder().encode(`sdnet-xfer/1 id ${chunkSize}`));
  h.update(sender.toBytes()).update(receiver.toBytes());
  for (const e of entries) h.update(new TextEncoder().encode(`\n${e.kind} ${e.size} ${e.path}`));
  return toHex(h.digest().subarray(0, 16));
}

class Outgoing {
  readonly id: string;
  readonly idBytes: Uint8Array;
  readonly peer: PublicKey;
  readonly peerName: string | null;
  readonly source: Source;
  readonly manifest: Manifest;
  aead: Aead | undefined;
  counter = 0n;
  state = 'offered';
  bytesDone = 0;
  filesDone = 0;
  pausedLocal = false;
  pausedPeer = false;
  error: { code: string; message: string } | undefined;
  control: FrameWriter | undefined;
  readonly abort = new AbortController();
  readonly fds = new Map<number, Promise<FileHandle>>();
  constructor(id: string, peer: PublicKey, peerName: string | null, source: Source, chunkSize: number) {
    this.id = id;
    this.idBytes = fromHex(id);
    this.peer = peer;
    this.peerName = peerName;
    this.source = source;
    this.manifest = { id, chunkSize, entries: source.entries };
  }
  /** The source file, opened once (concurrent pull streams share it); at most 16 stay open. */
  fd(file: number, path: string): Promise<FileHandle> {
    let p = this.fds.get(file);
    if (p !== undefined) return p;
    if (this.fds.size >= 16) {
      const [k, old] = this.fds.entries().next().value as [number, Promise<FileHandle>];
      this.fds.delete(k);
      // Closed once the reads in flight on it are done (they hold the handle).
      void old.then((fh) => setTimeout(() => void fh.close().catch(() => undefined), 5_000)).catch(() => undefined);
    }
    p = open(path, 'r');
    p.catch(() => undefined);
    this.fds.set(file, p);
    return p;
  }
  async closeAll(): Promise<void> {
    for (const p of this.fds.values()) await p.then((fh) => fh.close()).catch(() => undefined);
    this.fds.clear();
  }
}

export class TransferService implements TransferModule, DeviceProtocol {
  readonly alpn = XFER_ALPN;
  readonly limits: ProtocolLimits = { maxMessageBytes: XFER_MAX_MANIFEST_BYTES + 1024, maxConcurrentStreams: XFER_MAX_CONCURRENT_STREAMS, idleTimeoutMs: XFER_IDLE_TIMEOUT_MS };
  readonly protocols: readonly DeviceProtocol[];
  readonly #ctx: ModuleContext;
  readonly #options: TransferModuleOptions;
  readonly #provider: CryptoProvider;
  readonly #chunkSize: number;
  readonly #out = new Map<string, Outgoing>();
  readonly #in = new Map<string, Incoming>();
  readonly #finished: TransferInfo[] = [];
  readonly #lastEmit = new Map<string, { at: number; bytes: number; rate: number }>();
  readonly #shutdown = new AbortController();

  constructor(ctx: ModuleContext, options: TransferModuleOptions = {}) {
    this.#ctx = ctx;
    this.#options = options;
    this.#provider = options.provider ?? defaultCryptoProvider;
    const cs = options.chunkSize ?? XFER_DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(cs) || cs < XFER_MIN_CHUNK_SIZE || cs > XFER_MAX_CHUNK_SIZE || (cs & (cs - 1)) !== 0) throw new RangeError(`chunkSize must be a power of two in [${XFER_MIN_CHUNK_SIZE}, ${XFER_MAX_CHUNK_SIZE}]`);
    this.#chunkSize = cs;
    this.protocols = [this];
  }

  // ---------------------------------------------------------------- lifecycle

  /** Transfers a previous run left unfinished are listed (`waiting`) until their sender offers again. */
  async start(): Promise<void> {
    const root = join(this.#ctx.dataDir, 'transfers');
    let names: string[] = [];
    try {
      names = await readdir(root);
    } catch {
      return;
    }
    for (const n of names) {
      const dir = join(root, n);
      const stored = await loadOffer(dir);
      if (stored === undefined) continue;
      const key = `${stored.peer}:${stored.manifest.id}`;
      if (this.#in.has(key)) continue;
      try {
        const inc = await Incoming.open({ manifest: stored.manifest, peer: stored.peer, peerName: stored.peerName, dir, downloadsDir: this.#ctx.downloadsDir, hooks: this.#incomingHooks(stored.peer, stored.manifest.id, () => this.#in.get(key)), provider: this.#provider, stored, create: false });
        inc.status = 'waiting';
        this.#in.set(key, inc);
      } catch (err) {
        this.#ctx.log.warn('unreadable transfer state skipped', { dir, error: String(err) });
      }
    }
  }

  shutdown(): void {
    this.#shutdown.abort(new InterruptedError('The service is shutting down'));
    for (const out of this.#out.values()) out.abort.abort(new InterruptedError('The service is shutting down'));
    for (const inc of this.#in.values()) {
      void inc.stop(new InterruptedError('The service is shutting down')).then(() => inc.release());
    }
  }

  // ---------------------------------------------------------------- events

  #emit(t: { id: string; direction: 'send' | 'receive'; peer: string; peerName: string | null }, stage: string, extra: Record<string, unknown>, bytesDone: number, bytesTotal: number, files: number): void {
    const key = `${t.direction}:${t.id}`;
    const now = performance.now();
    let rate: number | undefined;
    let etaMs: number | undefined;
    if (stage === 'transferring') {
      const last = this.#lastEmit.get(key);
      if (last !== undefined && now - last.at < XFER_PROGRESS_INTERVAL_MS && extra.resumed === undefined) return;
      if (last !== undefined && now > last.at) {
        const inst = ((bytesDone - last.bytes) * 1000) / (now - last.at);
        rate = last.rate === 0 ? inst : 0.8 * last.rate + 0.2 * inst;
      } else rate = 0;
      this.#lastEmit.set(key, { at: now, bytes: bytesDone, rate });
      if (rate > 0) etaMs = Math.round(((bytesTotal - bytesDone) / rate) * 1000);
    } else if (['completed', 'failed', 'cancelled'].includes(stage)) this.#lastEmit.delete(key);
    this.#ctx.transferProgress({
      transferId: t.id,
      direction: t.direction,
      peer: { endpointId: t.peer, ...(t.peerName !== null ? { name: t.peerName } : {}) },
      stage,
      bytesDone,
      bytesTotal,
      files,
      ...(rate !== undefined ? { rate: Math.round(rate) } : {}),
      ...(etaMs !== undefined ? { etaMs } : {}),
      ...extra,
    });
  }

  #incomingHooks(peer: string, id: string, get: () => Incoming | undefined): { progress: (stage: string, extra?: Record<string, unknown>) => void; log: ModuleContext['log'] } {
    return {
      progress: (stage, extra = {}) => {
        const inc = get();
        this.#emit({ id, direction: 'receive', peer, peerName: inc?.peerName ?? null }, stage, extra, inc?.bytesDone ?? 0, inc?.bytesTotal ?? 0, inc?.fileCount ?? 0);
      },
      log: this.#ctx.log,
    };
  }

  #remember(info: TransferInfo): void {
    this.#finished.unshift(info);
    if (this.#finished.length > XFER_MAX_FINISHED) this.#finished.pop();
  }

  // ---------------------------------------------------------------- listing and control

  #infoOut(o: Outgoing): TransferInfo {
    return {
      id: o.id,
      direction: 'send',
      peer: { endpointId: o.peer.toString(), name: o.peerName },
      state: o.state,
      files: o.source.fileCount,
      filesDone: o.filesDone,
      bytesTotal: o.source.bytes,
      bytesDone: o.bytesDone,
      ...(o.pausedLocal || o.pausedPeer ? { paused: [...(o.pausedLocal ? ['local'] : []), ...(o.pausedPeer ? ['peer'] : [])] } : {}),
      ...(o.error ? { error: o.error } : {}),
    };
  }

  #infoIn(i: Incoming): TransferInfo {
    return {
      id: i.id,
      direction: 'receive',
      peer: { endpointId: i.peer, name: i.peerName },
      state: i.status,
      files: i.fileCount,
      filesDone: i.filesDone,
      bytesTotal: i.bytesTotal,
      bytesDone: i.bytesDone,
      ...(i.pausedBy.size > 0 ? { paused: [...i.pausedBy] } : {}),
      ...(i.error ? { error: i.error } : {}),
      dest: i.dest,
    };
  }

  /** Transfers in progress (in and out), then recently finished ones. */
  list(): TransferInfo[] {
    return [...[...this.#out.values()].map((o) => this.#infoOut(o)), ...[...this.#in.values()].map((i) => this.#infoIn(i)), ...this.#finished];
  }

  #find(id: string): { out?: Outgoing; inc?: Incoming } {
    const q = id.toLowerCase();
    const outs = [...this.#out.values()].filter((o) => o.id.startsWith(q));
    const ins = [...this.#in.values()].filter((i) => i.id.startsWith(q));
    if (q.length < 4 || outs.length + ins.length === 0) throw new TransferError('ERR_TRANSFER_NOT_FOUND', `No transfer in progress has the id ${id}`);
    if (outs.length + ins.length > 1) throw new TransferError('ERR_TRANSFER_NOT_FOUND', `The id ${id} names several transfers; give more of it`);
    return outs.length > 0 ? { out: outs[0]! } : { inc: ins[0]! };
  }

  /** Pause a transfer (either side); the other side is told. */
  pause(id: string): TransferInfo {
    const { out, inc } = this.#find(id);
    if (out !== undefined) {
      out.pausedLocal = true;
      out.state = 'paused';
      out.control?.write(encodeControl({ t: 'pause' })).catch(() => undefined);
      this.#emit({ id: out.id, direction: 'send', peer: out.peer.toString(), peerName: out.peerName }, 'paused', { by: 'local' }, out.bytesDone, out.source.bytes, out.source.fileCount);
      return this.#infoOut(out);
    }
    inc!.pause('local');
    return this.#infoIn(inc!);
  }

  resume(id: string): TransferInfo {
    const { out, inc } = this.#find(id);
    if (out !== undefined) {
      out.pausedLocal = false;
      if (!out.pausedPeer) out.state = 'transferring';
      out.control?.write(encodeControl({ t: 'resume' })).catch(() => undefined);
      this.#emit({ id: out.id, direction: 'send', peer: out.peer.toString(), peerName: out.peerName }, 'transferring', { resumed: true }, out.bytesDone, out.source.bytes, out.source.fileCount);
      return this.#infoOut(out);
    }
    inc!.resume('local');
    return this.#infoIn(inc!);
  }

  async cancel(id: string): Promise<TransferInfo> {
    const { out, inc } = this.#find(id);
    if (out !== undefined) {
      out.control?.write(encodeControl({ t: 'cancel', reason: 'cancelled by the sender' })).catch(() => undefined);
      out.abort.abort(new TransferError('ERR_TRANSFER_CANCELLED', 'Cancelled'));
      return { ...this.#infoOut(out), state: 'cancelled' };
    }
    const i = inc!;
    i.cancelReason = 'cancelled by the receiver';
    i.cancelledLocally = true;
    await i.stop(new TransferError('ERR_TRANSFER_CANCELLED', 'Cancelled by the receiver'));
    await this.#endIncoming(i, 'cancelled', { code: 'ERR_TRANSFER_CANCELLED', message: 'Cancelled by the receiver' });
    return this.#infoIn(i);
  }

  async #endIncoming(i: Incoming, state: 'completed' | 'failed' | 'cancelled', error?: { code: string; message: string }): Promise<void> {
    const key = `${i.peer}:${i.id}`;
    if (this.#in.get(key) !== i) return;
    this.#in.delete(key);
    i.status = state;
    if (error) i.error = error;
    if (state === 'cancelled') await i.discard().catch(() => undefined);
    else i.release();
    this.#remember(this.#infoIn(i));
    this.#emit({ id: i.id, direction: 'receive', peer: i.peer, peerName: i.peerName }, state, error ? { error } : { dest: i.dest }, i.bytesDone, i.bytesTotal, i.fileCount);
  }

  // ---------------------------------------------------------------- sending

  async share(device: DeviceSnapshot, paths: readonly string[], options: ShareOptions = {}): Promise<TransferResult> {
    const peer = PublicKey.fromString(device.endpointId);
    const linkKey = this.#ctx.registry.linkKey(peer);
    if (linkKey === undefined) throw new SdnetError('ERR_DEVICE_UNKNOWN', `${device.name ?? device.endpointId.slice(0, 10)} is not paired`);
    if (paths.length === 0) throw new RangeError('share needs at least one path');
    const me = this.#ctx.identity.endpointId;
    const timeoutMs = options.timeoutMs ?? 10 * 60_000;
    const deadline = performance.now() + timeoutMs;
    const tmp = { id: '-', direction: 'send' as const, peer: peer.toString(), peerName: device.name ?? null };
    this.#emit(tmp, 'hashing', {}, 0, 0, 0);
    let hashed = 0;
    const source = await buildSource(paths, this.#chunkSize, { provider: this.#provider, onHashed: (n) => (hashed += n) });
    void hashed;
    const id = transferIdFor(me, peer, source.entries, this.#chunkSize, this.#provider);
    if (this.#out.has(id)) throw new TransferError('ERR_TRANSFER_BUSY', `These files are being sent to ${device.name ?? 'this device'} already (transfer ${id.slice(0, 8)})`);
    const out = new Outgoing(id, peer, device.name ?? null, source, this.#chunkSize);
    this.#out.set(id, out);
    options.onStart?.(id);
    const ev = { id, direction: 'send' as const, peer: peer.toString(), peerName: out.peerName };
    if (source.skipped.length > 0) this.#ctx.log.warn('skipped what is not a file or directory', { count: source.skipped.length });
    const signal = AbortSignal.any([out.abort.signal, this.#shutdown.signal, ...(options.signal ? [options.signal] : [])]);
    try {
      this.#emit(ev, 'offered', { skipped: source.skipped.length }, 0, source.bytes, source.fileCount);
      for (;;) {
        try {
          const r = await this.#attempt(out, linkKey, signal, deadline);
          out.state = 'completed';
          this.#remember(this.#infoOut(out));
          this.#emit(ev, 'completed', {}, r.bytes, source.bytes, source.fileCount);
          return r;
        } catch (err) {
          const reason = signal.aborted ? signal.reason : err;
          const code = (reason as { code?: unknown })?.code;
          const final = signal.aborted || (typeof code === 'string' && FINAL_CODES.has(code));
          if (final || performance.now() >= deadline) {
            const e = final ? reason : new TransferError('ERR_TRANSFER_TIMEOUT', `The transfer did not finish within ${timeoutMs} ms: ${String((reason as Error)?.message ?? reason)}`);
            const c = (e as { code?: unknown })?.code;
            out.state = c === 'ERR_TRANSFER_CANCELLED' ? 'cancelled' : 'failed';
            out.error = { code: typeof c === 'string' ? c : 'ERR_TRANSFER_FAILED', message: String((e as Error)?.message ?? e) };
            this.#remember(this.#infoOut(out));
            this.#emit(ev, out.state, { error: out.error }, out.bytesDone, source.bytes, source.fileCount);
            throw e;
          }
          if (out.state !== 'waiting') {
            out.state = 'waiting';
            this.#emit(ev, 'waiting', { reason: String((reason as Error)?.message ?? reason) }, out.bytesDone, source.bytes, source.fileCount);
          }
          await delay(1000, signal).catch(() => undefined);
        }
      }
    } finally {
      this.#out.delete(id);
      await out.closeAll();
    }
  }

  async #attempt(out: Outgoing, linkKey: Uint8Array, signal: AbortSignal, deadline: number): Promise<TransferResult> {
    const conn = await this.#ctx.connect(out.peer, XFER_ALPN, { signal: AbortSignal.any([signal, AbortSignal.timeout(Math.max(1000, Math.min(30_000, deadline - performance.now())))]) });
    const bi = await conn.openBi({ signal });
    const reader = new FrameReader(bi.readable);
    const writer = new FrameWriter(bi.writable);
    const ev = { id: out.id, direction: 'send' as const, peer: out.peer.toString(), peerName: out.peerName };
    const read = async (): Promise<ControlMessage | undefined> => {
      const f = await reader.readFrame(XFER_MAX_CONTROL_BYTES, { signal: AbortSignal.any([signal, AbortSignal.timeout(XFER_IDLE_TIMEOUT_MS)]) });
      return f === undefined ? undefined : decodeControl(f);
    };
    let ok = false;
    try {
      await writer.write(encodeControl({ t: 'offer', v: 1, manifest: out.manifest }));
      const first = await read();
      if (first === undefined) throw new InterruptedError('The receiver closed the offer without an answer');
      if (first.t === 'reject') throw new TransferError(first.code === 'ERR_TRANSFER_BUSY' ? 'ERR_TRANSFER_BUSY' : 'ERR_TRANSFER_REFUSED', `Refused by the receiver: ${first.reason}`);
      if (first.t === 'done') {
        ok = true;
        return { transferId: out.id, files: first.files, bytes: first.bytes };
      }
      if (first.t === 'fail') throw new TransferError(FINAL_CODES.has(first.code) ? (first.code as 'ERR_TRANSFER_FAILED') : 'ERR_TRANSFER_FAILED', `The receiver failed: ${first.reason}`);
      if (first.t !== 'accept') throw new TransferError('ERR_TRANSFER_MALFORMED', `Expected accept, got ${first.t}`);
      out.aead = chunkAead(deriveChunkKey(linkKey, fromHex(first.salt), out.idBytes, this.#ctx.identity.endpointId.toBytes(), out.peer.toBytes(), this.#provider), this.#provider);
      out.counter = 0n;
      out.control = writer;
      out.state = out.pausedLocal ? 'paused' : 'transferring';
      this.#emit(ev, 'accepted', {}, out.bytesDone, out.source.bytes, out.source.fileCount);
      if (out.pausedLocal) await writer.write(encodeControl({ t: 'pause' }));
      for (;;) {
        const m = await read();
        if (m === undefined) throw new InterruptedError('The receiver closed the transfer');
        switch (m.t) {
          case 'progress':
            out.bytesDone = m.bytes;
            out.filesDone = m.files;
            if (out.state === 'transferring') this.#emit(ev, 'transferring', {}, out.bytesDone, out.source.bytes, out.source.fileCount);
            break;
          case 'pause':
            out.pausedPeer = true;
            out.state = 'paused';
            this.#emit(ev, 'paused', { by: 'peer', ...(m.code ? { error: { code: m.code, message: m.reason ?? '' } } : {}) }, out.bytesDone, out.source.bytes, out.source.fileCount);
            break;
          case 'resume':
            out.pausedPeer = false;
            if (!out.pausedLocal) out.state = 'transferring';
            this.#emit(ev, 'transferring', { resumed: true }, out.bytesDone, out.source.bytes, out.source.fileCount);
            break;
          case 'done':
            out.bytesDone = m.bytes;
            out.filesDone = m.files;
            ok = true;
            await writer.close().catch(() => undefined);
            return { transferId: out.id, files: m.files, bytes: m.bytes };
          case 'cancel':
            throw new TransferError('ERR_TRANSFER_CANCELLED', `The receiver cancelled the transfer${m.reason ? `: ${m.reason}` : ''}`);
          case 'fail':
            throw new TransferError(FINAL_CODES.has(m.code) ? (m.code as 'ERR_TRANSFER_FAILED') : 'ERR_TRANSFER_FAILED', `The receiver failed: ${m.reason}`);
          default:
            throw new TransferError('ERR_TRANSFER_MALFORMED', `Unexpected ${m.t} on the control stream`);
        }
      }
    } finally {
      out.control = undefined;
      out.aead = undefined;
      const cancelled = (signal.reason as { code?: unknown } | undefined)?.code === 'ERR_TRANSFER_CANCELLED';
      if (!ok && cancelled) {
        // Our cancel goes out before the FIN (a reset could drop it).
        void writer.close().catch(() => undefined);
        void reader.cancel(StreamCode.SHUTDOWN);
      } else if (!ok) {
        void writer.reset(StreamCode.SHUTDOWN);
        void reader.cancel(StreamCode.SHUTDOWN);
      }
    }
  }

  // ---------------------------------------------------------------- serving streams

  async handleStream(stream: FramedStream, ctx: ConnectionContext): Promise<void> {
    const first = await stream.read();
    if (first === undefined) return;
    let m: ControlMessage;
    try {
      m = decodeControl(first);
    } catch (err) {
      // A manifest that breaks the rules: refused with the reason, nothing written.
      if (err instanceof TransferError && (err.code === 'ERR_TRANSFER_MANIFEST' || err.code === 'ERR_TRANSFER_PATH')) {
        this.#ctx.log.warn('offer refused', { peer: ctx.remoteId.fmtShort(), code: err.code, error: err.message });
        this.#emit({ id: '-', direction: 'receive', peer: ctx.remoteId.toString(), peerName: this.#ctx.registry.get(ctx.remoteId)?.name ?? null }, 'failed', { error: { code: err.code, message: err.message } }, 0, 0, 0);
        await stream.write(encodeControl({ t: 'reject', code: err.code, reason: err.message }));
        await stream.finish().catch(() => undefined);
        return;
      }
      throw asStreamError(err);
    }
    if (m.t === 'offer') return this.#receive(stream, ctx, m.manifest);
    if (m.t === 'table' || m.t === 'get') return this.#serve(stream, ctx, m);
    throw new StreamProtocolError('ERR_TRANSFER_MALFORMED', StreamCode.UNKNOWN_MESSAGE, `A stream may not open with ${m.t}`);
  }

  async #serve(stream: FramedStream, ctx: ConnectionContext, first: Extract<ControlMessage, { t: 'table' | 'get' }>): Promise<void> {
    let m: ControlMessage = first;
    let buf: Uint8Array | undefined;
    for (;;) {
      if (m.t !== 'table' && m.t !== 'get') throw new StreamProtocolError('ERR_TRANSFER_MALFORMED', StreamCode.UNKNOWN_MESSAGE, `Unexpected ${m.t} on a pull stream`);
      const out = this.#out.get(m.id);
      if (out === undefined || !out.peer.equals(ctx.remoteId) || out.aead === undefined) {
        await stream.write(encodeControl({ t: 'fail', code: 'ERR_TRANSFER_UNKNOWN', reason: 'No such transfer in progress' }));
        await stream.finish().catch(() => undefined);
        return;
      }
      const f = out.source.files[m.file];
      if (f === undefined) throw new StreamProtocolError('ERR_TRANSFER_MALFORMED', StreamCode.MALFORMED_MESSAGE, `File ${m.file} is not a file of the transfer`);
      const cs = out.manifest.chunkSize;
      const n = chunkCount(f.entry.size, cs);
      if (m.t === 'table') {
        const frame = new Uint8Array(1 + f.table.length);
        frame[0] = FRAME_TABLE;
        frame.set(f.table, 1);
        await stream.write(frame);
      } else {
        if (m.first + m.count > n) throw new StreamProtocolError('ERR_TRANSFER_MALFORMED', StreamCode.MALFORMED_MESSAGE, `Chunks ${m.first}+${m.count} beyond the ${n} of file ${m.file}`);
        buf ??= new Uint8Array(CHUNK_HEADER_BYTES + cs + TAG_BYTES);
        const fh = await out.fd(m.file, f.absPath);
        for (let i = m.first; i < m.first + m.count; i++) {
          const aead = out.aead;
          if (aead === undefined) throw new InterruptedError('The attempt ended');
          const len = Math.min(cs, f.entry.size - i * cs);
          let got = 0;
          while (got < len) {
            const { bytesRead } = await fh.read(buf, CHUNK_HEADER_BYTES + got, len - got, i * cs + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          const plain = buf.subarray(CHUNK_HEADER_BYTES, CHUNK_HEADER_BYTES + len);
          if (got !== len || Buffer.compare(this.#provider.hash('sha256', plain), f.table.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)) !== 0) {
            const reason = `${f.entry.path} changed since it was offered (chunk ${i})`;
            await stream.write(encodeControl({ t: 'fail', code: 'ERR_TRANSFER_SOURCE_CHANGED', reason }));
            out.abort.abort(new TransferError('ERR_TRANSFER_SOURCE_CHANGED', `${reason}; send it again`));
            return;
          }
          const counter = out.counter++;
          await stream.write(sealChunkInPlace(aead, out.idBytes, buf, len, m.file, i, counter, i === n - 1));
        }
      }
      const next = await stream.read();
      if (next === undefined) {
        await stream.finish().catch(() => undefined);
        return;
      }
      try {
        m = decodeControl(next);
      } catch (err) {
        throw asStreamError(err);
      }
    }
  }

  // ---------------------------------------------------------------- receiving

  async #receive(stream: FramedStream, ctx: ConnectionContext, manifest: Manifest): Promise<void> {
    const peer = ctx.remoteId.toString();
    const peerName = this.#ctx.registry.get(ctx.remoteId)?.name ?? null;
    const key = `${peer}:${manifest.id}`;
    const reject = async (code: string, reason: string): Promise<void> => {
      await stream.write(encodeControl({ t: 'reject', code, reason }));
      await stream.finish().catch(() => undefined);
    };
    const linkKey = this.#ctx.registry.linkKey(ctx.remoteId);
    if (linkKey === undefined) return reject('ERR_TRANSFER_REFUSED', 'not paired');
    let inc = this.#in.get(key);
    if (inc !== undefined && inc.running) await inc.stop(new InterruptedError('Offered again'));
    const dir = transferDir(this.#ctx.dataDir, peer, manifest.id);
    const ev = { id: manifest.id, direction: 'receive' as const, peer, peerName };
    if (inc === undefined) {
      const active = [...this.#in.values()].filter((i) => i.peer === peer && i.status !== 'waiting').length;
      if (active >= XFER_MAX_TRANSFERS_PER_PEER) return reject('ERR_TRANSFER_BUSY', `at most ${XFER_MAX_TRANSFERS_PER_PEER} transfers from one device at once`);
      const stored = await loadOffer(dir);
      const resumable = stored !== undefined && stored.peer === peer && stored.manifest.entries.length === manifest.entries.length && stored.manifest.entries.every((e, i) => e.path === manifest.entries[i]!.path && e.kind === manifest.entries[i]!.kind && e.size === manifest.entries[i]!.size);
      let bytes = 0;
      let files = 0;
      for (const e of manifest.entries) {
        if (e.kind !== 'file') continue;
        bytes += e.size;
        files++;
      }
      if (!resumable) {
        const info: OfferInfo = { id: manifest.id, peer: { endpointId: peer, name: peerName }, files, bytes, paths: manifest.entries.slice(0, 20).map((e) => e.path) };
        this.#emit(ev, 'offered', { paths: info.paths }, 0, bytes, files);
        const policy = this.#options.policy ?? 'accept';
        let yes = policy === 'accept' || (this.#options.autoAcceptFrom ?? []).includes(peer);
        if (!yes && policy === 'ask' && this.#options.ask) yes = await this.#options.ask(info);
        if (!yes) {
          this.#emit(ev, 'failed', { error: { code: 'ERR_TRANSFER_REFUSED', message: 'refused' } }, 0, bytes, files);
          return reject('ERR_TRANSFER_REFUSED', 'the receiver refused the transfer');
        }
      }
      if (stored !== undefined && !resumable) await removeTransferDir(dir);
      inc = await Incoming.open({ manifest, peer, peerName, dir, downloadsDir: this.#ctx.downloadsDir, hooks: this.#incomingHooks(peer, manifest.id, () => this.#in.get(key)), provider: this.#provider, ...(resumable ? { stored } : {}), create: true });
      this.#in.set(key, inc);
    } else {
      // Known (waiting after a restart, or interrupted): the same files? Else it starts over.
      const same = inc.manifest.entries.length === manifest.entries.length && inc.manifest.entries.every((e, i) => e.path === manifest.entries[i]!.path && e.size === manifest.entries[i]!.size && e.root === manifest.entries[i]!.root);
      if (!same) {
        this.#in.delete(key);
        inc.release();
        const stored = await loadOffer(dir);
        inc = await Incoming.open({ manifest, peer, peerName, dir, downloadsDir: this.#ctx.downloadsDir, hooks: this.#incomingHooks(peer, manifest.id, () => this.#in.get(key)), provider: this.#provider, ...(stored ? { stored } : {}), create: true });
        this.#in.set(key, inc);
      }
    }
    inc.peerName = peerName;
    // Accept with a fresh salt: a fresh key (and nonce counter) for this attempt.
    const salt = this.#provider.randomBytes(SALT_BYTES);
    const aead = chunkAead(deriveChunkKey(linkKey, salt, inc.idBytes, ctx.remoteId.toBytes(), this.#ctx.identity.endpointId.toBytes(), this.#provider), this.#provider);
    await stream.write(encodeControl({ t: 'accept', salt: toHex(salt) }));
    const i = inc;
    try {
      await i.run({
        conn: ctx.connection,
        control: { read: () => stream.read(), write: (b) => stream.write(b) },
        aead,
        signal: AbortSignal.any([ctx.signal, this.#shutdown.signal]),
        streams: this.#options.pullStreams ?? XFER_PULL_STREAMS,
      });
      await stream.finish().catch(() => undefined);
      await this.#endIncoming(i, 'completed');
    } catch (err) {
      if (err instanceof TransferError && err.code === 'ERR_TRANSFER_CANCELLED') {
        await this.#endIncoming(i, 'cancelled', { code: err.code, message: err.message });
        return;
      }
      if (err instanceof TransferError) {
        this.#ctx.log.warn('transfer failed', { id: i.id, code: err.code, error: err.message });
        // The state stays: a later offer of the same files resumes what was verified.
        i.status = 'failed';
        i.error = { code: err.code, message: err.message };
        this.#emit(ev, 'failed', { error: i.error }, i.bytesDone, i.bytesTotal, i.fileCount);
        this.#in.delete(key);
        i.release();
        this.#remember(this.#infoIn(i));
        await stream.finish().catch(() => undefined);
        return;
      }
      if (this.#in.get(key) === i && !i.running && i.status !== 'completed') {
        i.status = 'waiting';
        this.#emit(ev, 'waiting', { reason: String((err as Error)?.message ?? err) }, i.bytesDone, i.bytesTotal, i.fileCount);
      }
      stream.reset(StreamCode.SHUTDOWN);
    }
  }
}

/** The transfer module factory for `Core.init({ modules: { transfer: transferModule() } })`. */
export function transferModule(options: TransferModuleOptions = {}): (ctx: ModuleContext) => TransferService {
  return (ctx) => new TransferService(ctx, options);
}
