/**
 * The receiving side of one transfer (pairing-transfer.md B.3): it pulls the chunk tables,
 * checks each against its root before any chunk is accepted, then pulls the missing chunks
 * over several streams with a byte window. Each chunk is opened (AEAD), hashed and compared
 * with its table entry before it is written (`pwrite` into `.<name>.<id>.sdpart` next to the
 * target); one that fails is requested again, never written. The state is saved (after
 * fdatasync of the parts) every 64 MiB or 2 s; a finished file is fsynced, renamed without
 * clobbering anything, and its directory fsynced.
 *
 * @module
 */
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, realpath, statfs, unlink, utimes, chmod, type FileHandle } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { Connection } from '../../endpoint/connection.ts';
import type { PublicKey } from '../../identity/keys.ts';
import type { Aead, CryptoProvider } from '../../transport/crypto/index.ts';
import { fsyncDir } from '../../service/atomic-file.ts';
import { SdnetError } from '../../util/errors.ts';
import { FrameReader, FrameWriter } from '../framing.ts';
import { TransferError } from './errors.ts';
import {
  XFER_CONTROL_PROGRESS_MS,
  XFER_DISK_RETRY_MS,
  XFER_IDLE_TIMEOUT_MS,
  XFER_MAX_CHUNK_RETRIES,
  XFER_MAX_CHUNKS_PER_GET,
  XFER_MAX_CHUNKS_PER_FILE,
  XFER_MAX_CONTROL_BYTES,
  XFER_STATE_SAVE_BYTES,
  XFER_STATE_SAVE_MS,
  XFER_WINDOW_BYTES,
} from './limits.ts';
import { PART_SUFFIX } from './paths.ts';
import { bitsFor, clearBits, countBits, hasBit, loadState, loadTables, removeTransferDir, saveOffer, saveState, saveTables, setBit, type FileState, type StoredOffer } from './state.ts';
import { makeDir } from '../../util/make-dir.ts';
import { CHUNK_HEADER_BYTES, FRAME_CONTROL, FRAME_TABLE, HASH_BYTES, TAG_BYTES, chunkCount, decodeControl, encodeControl, fileRoot, openChunk, toHex, type Manifest, type ManifestEntry } from './wire.ts';

export interface IncomingFile {
  readonly index: number;
  readonly entry: ManifestEntry;
  readonly chunks: number;
  readonly target: string;
  readonly part: string;
  table: Uint8Array | undefined;
  state: FileState;
  fh: FileHandle | undefined;
  opening?: Promise<FileHandle> | undefined;
  finishing?: Promise<void> | undefined;
  /** The part existed without a state for it: re-hash it once the table is known. */
  rehash: boolean;
  /** Where it landed (no-clobber may pick another name). */
  finalPath?: string;
}

type Job = { kind: 'table'; file: number } | { kind: 'range'; file: number; first: number; count: number };

/** What the receiver reports to its owner. */
export interface IncomingHooks {
  progress(stage: string, extra?: Record<string, unknown>): void;
  log: { warn(msg: string, f?: Record<string, unknown>): void; debug(msg: string, f?: Record<string, unknown>): void };
}

function errno(err: unknown): string | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === 'string' ? c : undefined;
}

const isDiskFull = (err: unknown): boolean => errno(err) === 'ENOSPC' || errno(err) === 'EDQUOT';

/** A retriable interruption (peer gone, stream broke): the state is kept for a resume. */
export class InterruptedError extends SdnetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_TRANSFER_INTERRUPTED', message, cause === undefined ? undefined : { cause });
    this.name = 'InterruptedError';
  }
}

/** Create `parts` under `root` one component at a time; each must be a real directory (lstat, never followed). */
export async function ensureDirUnder(root: string, parts: readonly string[]): Promise<string> {
  let cur = root;
  for (const p of parts) {
    cur = join(cur, p);
    let st;
    try {
      st = await lstat(cur);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
      await mkdir(cur, { mode: 0o755 }).catch((e: unknown) => {
        if (errno(e) !== 'EEXIST') throw e;
      });
      st = await lstat(cur);
    }
    if (!st.isDirectory()) throw new TransferError('ERR_TRANSFER_PATH', `${cur} exists and is not a directory (a symlink is never followed)`);
  }
  return cur;
}

/** µs since the epoch → the seconds `utimes` takes, so that libuv's truncation to µs lands on the same µs. */
export function utimeSeconds(us: number): number {
  return (us + 0.5) / 1e6;
}

export class Incoming {
  readonly id: string;
  readonly idBytes: Uint8Array;
  readonly peer: string;
  peerName: string | null;
  readonly manifest: Manifest;
  readonly dir: string;
  readonly dest: string;
  readonly files: IncomingFile[];
  readonly bytesTotal: number;
  readonly fileCount: number;
  bytesDone = 0;
  filesDone = 0;
  status: 'offered' | 'transferring' | 'paused' | 'waiting' | 'verifying' | 'completed' | 'failed' | 'cancelled' = 'offered';
  error: { code: string; message: string } | undefined;
  readonly pausedBy = new Set<'local' | 'peer' | 'disk'>();
  readonly #hooks: IncomingHooks;
  readonly #provider: CryptoProvider;
  #gateWaiters: (() => void)[] = [];
  #jobWaiters: (() => void)[] = [];
  #tablesDirty = false;
  #bytesSinceSave = 0;
  #saving: Promise<void> | undefined;
  #diskTimer: ReturnType<typeof setInterval> | undefined;
  #control: { write(b: Uint8Array): Promise<void> } | undefined;
  #attempt: AbortController | undefined;
  #running: Promise<void> | undefined;
  readonly #retries = new Map<string, number>();
  cancelReason: string | undefined;
  /** Cancelled on this side (the sender is told). */
  cancelledLocally = false;

  private constructor(o: { manifest: Manifest; peer: string; peerName: string | null; dir: string; dest: string; files: IncomingFile[]; hooks: IncomingHooks; provider: CryptoProvider }) {
    this.manifest = o.manifest;
    this.id = o.manifest.id;
    this.idBytes = new Uint8Array(Buffer.from(o.manifest.id, 'hex'));
    this.peer = o.peer;
    this.peerName = o.peerName;
    this.dir = o.dir;
    this.dest = o.dest;
    this.files = o.files;
    this.#hooks = o.hooks;
    this.#provider = o.provider;
    let total = 0;
    let count = 0;
    for (const f of o.files) {
      if (f.entry.kind !== 'file') continue;
      total += f.entry.size;
      count++;
    }
    this.bytesTotal = total;
    this.fileCount = count;
  }

  /**
   * The transfer's files and state: from `dir` if a previous attempt left one there (same
   * paths and sizes; a file whose root changed starts over and is reported), else fresh.
   * Writes `offer.json` (called only once the offer is accepted).
   */
  static async open(o: { manifest: Manifest; peer: string; peerName: string | null; dir: string; downloadsDir: string; hooks: IncomingHooks; provider: CryptoProvider; stored?: StoredOffer; create: boolean }): Promise<Incoming> {
    const stored = o.stored;
    let dest: string;
    if (stored !== undefined) dest = stored.dest;
    else {
      await makeDir(o.downloadsDir, 0o700);
      dest = await realpath(o.downloadsDir);
    }
    const cs = o.manifest.chunkSize;
    const chunks = o.manifest.entries.map((e) => (e.kind === 'file' ? chunkCount(e.size, cs) : 0));
    const loaded = stored !== undefined ? await loadState(o.dir, chunks) : undefined;
    const tables = stored !== undefined ? await loadTables(o.dir, chunks.length) : [];
    const files: IncomingFile[] = o.manifest.entries.map((entry, index) => {
      const parts = entry.path.split('/');
      const name = parts[parts.length - 1]!;
      const parent = join(dest, ...parts.slice(0, -1));
      const target = join(parent, name);
      const part = join(parent, `.${name}.${o.manifest.id.slice(0, 8)}${PART_SUFFIX}`);
      let state: FileState = { done: false, bits: bitsFor(chunks[index]!) };
      let table = tables[index];
      if (table !== undefined && toHex(fileRoot(entry.size, cs, table, o.provider)) !== entry.root) table = undefined;
      const old = stored?.manifest.entries[index];
      const sameRoot = old !== undefined && old.root === entry.root;
      if (loaded !== undefined && sameRoot) state = loaded[index]!;
      else if (stored !== undefined && !sameRoot && entry.kind === 'file') {
        o.hooks.progress('source-changed', { file: entry.path });
        table = undefined;
      }
      return { index, entry, chunks: chunks[index]!, target, part, table, state, fh: undefined, rehash: loaded === undefined && stored !== undefined && entry.kind === 'file' };
    });
    const inc = new Incoming({ manifest: o.manifest, peer: o.peer, peerName: o.peerName, dir: o.dir, dest, files, hooks: o.hooks, provider: o.provider });
    for (const f of files) {
      if (f.entry.kind !== 'file') continue;
      if (f.state.done) {
        inc.filesDone++;
        inc.bytesDone += f.entry.size;
      } else inc.bytesDone += inc.#verifiedBytes(f);
    }
    if (o.create && stored === undefined) await saveOffer(o.dir, { version: 1, peer: o.peer, peerName: o.peerName, manifest: o.manifest, dest, createdAt: Date.now() });
    return inc;
  }

  #verifiedBytes(f: IncomingFile): number {
    const n = countBits(f.state.bits, f.chunks);
    if (n === 0) return 0;
    const cs = this.manifest.chunkSize;
    const lastLen = f.entry.size - (f.chunks - 1) * cs;
    return hasBit(f.state.bits, f.chunks - 1) ? (n - 1) * cs + lastLen : n * cs;
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Stop the current attempt (if any) and wait for it to wind down. */
  async stop(reason: unknown): Promise<void> {
    this.#attempt?.abort(reason);
    await this.#running?.catch(() => undefined);
  }

  // ---------------------------------------------------------------- control

  #send(m: Parameters<typeof encodeControl>[0]): void {
    this.#control?.write(encodeControl(m)).catch(() => undefined);
  }

  pause(by: 'local' | 'peer' | 'disk', extra: Record<string, unknown> = {}): void {
    const was = this.pausedBy.size > 0;
    this.pausedBy.add(by);
    if (this.status === 'transferring' || this.status === 'paused') this.status = 'paused';
    if (by !== 'peer') this.#send({ t: 'pause', ...(by === 'disk' ? { code: 'ERR_DISK_FULL', reason: String(extra.message ?? 'disk full') } : {}) });
    if (!was || by === 'disk') this.#hooks.progress('paused', { by, ...extra });
    void this.save().catch(() => undefined);
  }

  resume(by: 'local' | 'peer' | 'disk'): void {
    if (!this.pausedBy.delete(by)) return;
    if (by !== 'peer') this.#send({ t: 'resume' });
    if (this.pausedBy.size === 0) {
      if (this.status === 'paused') this.status = 'transferring';
      this.#hooks.progress('transferring', { resumed: true });
      for (const w of this.#gateWaiters.splice(0)) w();
    }
  }

  async #gate(signal: AbortSignal): Promise<void> {
    while (this.pausedBy.size > 0) {
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.#gateWaiters.push(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
    signal.throwIfAborted();
  }

  /** Bytes free at the destination (statfs). */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.dest);
    return Number(s.bavail) * Number(s.bsize);
  }

  /** Pause for a full disk, and look for free space until there is enough for the rest. */
  #diskFull(): void {
    const message = `disk full at ${this.dest}: ${this.bytesTotal - this.bytesDone} bytes still to write; free space and the transfer resumes`;
    this.pause('disk', { message, error: { code: 'ERR_DISK_FULL', message } });
    if (this.#diskTimer !== undefined) return;
    this.#diskTimer = setInterval(() => {
      void this.freeBytes().then(
        (free) => {
          if (free < this.bytesTotal - this.bytesDone + 64 * 1024) return;
          this.#stopDiskWatch();
          this.resume('disk');
        },
        () => undefined,
      );
    }, XFER_DISK_RETRY_MS);
    this.#diskTimer.unref?.();
  }

  #stopDiskWatch(): void {
    if (this.#diskTimer !== undefined) clearInterval(this.#diskTimer);
    this.#diskTimer = undefined;
  }

  // ---------------------------------------------------------------- persistence

  /** fdatasync the parts, then replace the state (and the tables if new ones came). */
  async save(): Promise<void> {
    if (this.#saving !== undefined) return this.#saving;
    const run = async (): Promise<void> => {
      const snapshot = this.files.map((f) => ({ done: f.state.done, bits: f.state.bits.slice() }));
      this.#bytesSinceSave = 0;
      for (const f of this.files) if (f.fh !== undefined) await f.fh.datasync().catch(() => undefined);
      if (this.#tablesDirty) {
        this.#tablesDirty = false;
        await saveTables(
          this.dir,
          this.files.map((f) => f.table),
        );
      }
      await saveState(this.dir, snapshot);
    };
    this.#saving = run().finally(() => {
      this.#saving = undefined;
    });
    return this.#saving;
  }

  // ---------------------------------------------------------------- the pull

  /**
   * One attempt: `control` is the offer's stream (progress goes out on it, the sender's
   * pause/resume/cancel come in), `conn` the connection to pull on. Resolves when every file
   * is in place; rejects with an {@link InterruptedError} when the peer went away (the state
   * is kept), or a {@link TransferError}.
   */
  run(o: { conn: Connection; control: { read(): Promise<Uint8Array | undefined>; write(b: Uint8Array): Promise<void> }; aead: Aead; signal: AbortSignal; streams: number }): Promise<void> {
    const p = this.#run(o).finally(() => {
      this.#running = undefined;
      this.#control = undefined;
      this.#attempt = undefined;
    });
    this.#running = p;
    return p;
  }

  async #run(o: { conn: Connection; control: { read(): Promise<Uint8Array | undefined>; write(b: Uint8Array): Promise<void> }; aead: Aead; signal: AbortSignal; streams: number }): Promise<void> {
    const attempt = new AbortController();
    this.#attempt = attempt;
    const signal = AbortSignal.any([attempt.signal, o.signal]);
    this.#control = o.control;
    this.status = this.pausedBy.size > 0 ? 'paused' : 'transferring';
    this.#hooks.progress('accepted');
    if (this.pausedBy.has('local')) this.#send({ t: 'pause' });
    // The sender's messages on the control stream.
    const controlTask = (async () => {
      for (;;) {
        const frame = await o.control.read();
        if (frame === undefined) {
          attempt.abort(new InterruptedError('The sender closed the transfer'));
          return;
        }
        const m = decodeControl(frame);
        if (m.t === 'pause') this.pause('peer');
        else if (m.t === 'resume') this.resume('peer');
        else if (m.t === 'cancel') {
          this.cancelReason = m.reason || 'cancelled by the sender';
          attempt.abort(new TransferError('ERR_TRANSFER_CANCELLED', `The sender cancelled the transfer${m.reason ? `: ${m.reason}` : ''}`));
          return;
        } else throw new TransferError('ERR_TRANSFER_MALFORMED', `Unexpected ${m.t} on the control stream`);
      }
    })().catch((err: unknown) => attempt.abort(err instanceof TransferError ? err : new InterruptedError('The control stream broke', err)));
    // Progress to the sender (verified bytes), which also keeps the control stream alive.
    const ticker = setInterval(() => {
      this.#send({ t: 'progress', bytes: this.bytesDone, files: this.filesDone });
      if (performance.now() - this.#lastSaveAt >= XFER_STATE_SAVE_MS) {
        this.#lastSaveAt = performance.now();
        void this.save().catch((err: unknown) => {
          if (isDiskFull(err)) this.#diskFull();
        });
      }
    }, XFER_CONTROL_PROGRESS_MS);
    ticker.unref?.();
    try {
      // Re-offered: look at the free space now. Still too little: paused again (the watcher
      // resumes it). Enough (space was freed since): go on at once rather than answer the new
      // offer with a stale "disk full".
      const enough = (await this.freeBytes().catch(() => Infinity)) >= this.bytesTotal - this.bytesDone;
      if (!enough) this.#diskFull();
      else if (this.pausedBy.has('disk')) {
        this.#stopDiskWatch();
        this.resume('disk');
      }
      await this.#pull(o.conn, o.aead, signal, o.streams);
      signal.throwIfAborted();
      this.status = 'verifying';
      this.#hooks.progress('verifying');
      await this.#finishDirs();
      this.status = 'completed';
      await o.control.write(encodeControl({ t: 'done', files: this.filesDone, bytes: this.bytesDone }));
      this.#stopDiskWatch();
      await this.#closeFiles();
      await removeTransferDir(this.dir);
    } catch (err) {
      const reason = signal.aborted ? signal.reason : err;
      await this.save().catch(() => undefined);
      if (reason instanceof TransferError && reason.code === 'ERR_TRANSFER_CANCELLED') {
        if (this.cancelledLocally) await o.control.write(encodeControl({ t: 'cancel', reason: 'cancelled by the receiver' })).catch(() => undefined);
        throw reason;
      }
      if (reason instanceof TransferError) {
        this.#send({ t: 'fail', code: reason.code, reason: reason.message });
        throw reason;
      }
      throw reason instanceof InterruptedError ? reason : new InterruptedError(`Transfer interrupted: ${String((reason as Error)?.message ?? reason)}`, reason);
    } finally {
      clearInterval(ticker);
      attempt.abort(new InterruptedError('attempt over'));
      // The control reader ends with the stream (the sender's FIN or reset); not awaited here.
      void controlTask;
    }
  }

  #lastSaveAt = performance.now();

  async #closeFiles(): Promise<void> {
    for (const f of this.files) {
      await f.fh?.close().catch(() => undefined);
      f.fh = undefined;
    }
  }

  /** Cancelled: parts and state removed. */
  async discard(): Promise<void> {
    this.#stopDiskWatch();
    await this.#closeFiles();
    for (const f of this.files) if (f.entry.kind === 'file' && !f.state.done) await unlink(f.part).catch(() => undefined);
    await removeTransferDir(this.dir);
  }

  release(): void {
    this.#stopDiskWatch();
    void this.#closeFiles();
  }

  /** The part file, opened once (concurrent callers share the opening). */
  #partHandle(f: IncomingFile): Promise<FileHandle> {
    if (f.fh !== undefined) return Promise.resolve(f.fh);
    f.opening ??= this.#openPart(f).finally(() => {
      f.opening = undefined;
    });
    return f.opening;
  }

  async #openPart(f: IncomingFile): Promise<FileHandle> {
    const parts = f.entry.path.split('/');
    await ensureDirUnder(this.dest, parts.slice(0, -1));
    const base = constants.O_RDWR | constants.O_NOFOLLOW;
    let fh: FileHandle;
    try {
      fh = await open(f.part, base | constants.O_CREAT | constants.O_EXCL, 0o600);
      if (countBits(f.state.bits, f.chunks) > 0) {
        // The part is gone although chunks were verified: start this file over.
        this.bytesDone -= this.#verifiedBytes(f);
        clearBits(f.state.bits);
      }
      f.rehash = false;
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      fh = await open(f.part, base);
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw new TransferError('ERR_TRANSFER_PATH', `${f.part} is not a regular file`);
      }
    }
    f.fh = fh;
    return fh;
  }

  /** Hash what a part already holds (state lost): its good chunks count as verified. */
  async #rehash(f: IncomingFile): Promise<void> {
    f.rehash = false;
    const fh = await this.#partHandle(f);
    const cs = this.manifest.chunkSize;
    const buf = new Uint8Array(cs);
    const size = (await fh.stat()).size;
    for (let i = 0; i < f.chunks; i++) {
      const len = Math.min(cs, f.entry.size - i * cs);
      if (i * cs + len > size) break;
      if (hasBit(f.state.bits, i)) continue;
      const { bytesRead } = await fh.read(buf, 0, len, i * cs);
      if (bytesRead !== len) break;
      if (Buffer.compare(this.#provider.hash('sha256', buf.subarray(0, len)), f.table!.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)) === 0) {
        setBit(f.state.bits, i);
        this.bytesDone += len;
      }
    }
  }

  #ranges(f: IncomingFile, per: number): Job[] {
    const jobs: Job[] = [];
    let i = 0;
    while (i < f.chunks) {
      if (hasBit(f.state.bits, i)) {
        i++;
        continue;
      }
      const first = i;
      while (i < f.chunks && i - first < per && !hasBit(f.state.bits, i)) i++;
      jobs.push({ kind: 'range', file: f.index, first, count: i - first });
    }
    return jobs;
  }

  async #pull(conn: Connection, aead: Aead, signal: AbortSignal, streams: number): Promise<void> {
    const cs = this.manifest.chunkSize;
    const per = Math.max(1, Math.min(XFER_MAX_CHUNKS_PER_GET, Math.floor(XFER_WINDOW_BYTES / streams / cs)));
    const jobs: Job[] = [];
    for (const f of this.files) {
      if (f.entry.kind !== 'file' || f.state.done) continue;
      if (f.chunks === 0) {
        if (toHex(fileRoot(0, cs, new Uint8Array(0), this.#provider)) !== f.entry.root) throw new TransferError('ERR_TRANSFER_TABLE_MISMATCH', `${f.entry.path}: the root of an empty file does not match`);
        await this.#partHandle(f);
        await this.#finishFile(f);
        continue;
      }
      if (f.table === undefined) jobs.push({ kind: 'table', file: f.index });
      else {
        if (f.rehash) await this.#rehash(f);
        if (countBits(f.state.bits, f.chunks) === f.chunks) await this.#finishFile(f);
        else jobs.push(...this.#ranges(f, per));
      }
    }
    let inFlight = 0;
    let failure: unknown;
    const wake = (): void => {
      for (const w of this.#jobWaiters.splice(0)) w();
    };
    const next = async (): Promise<Job | undefined> => {
      for (;;) {
        if (failure !== undefined) throw failure;
        signal.throwIfAborted();
        const j = jobs.shift();
        if (j !== undefined) return j;
        if (inFlight === 0) return undefined;
        await new Promise<void>((r) => this.#jobWaiters.push(r));
      }
    };
    const worker = async (): Promise<void> => {
      let stream: { reader: FrameReader; writer: FrameWriter } | undefined;
      const drop = (): void => {
        if (stream === undefined) return;
        void stream.writer.reset(0).catch(() => undefined);
        void stream.reader.cancel(0).catch(() => undefined);
        stream = undefined;
      };
      const onAbort = (): void => drop();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for (;;) {
          await this.#gate(signal);
          const job = await next();
          if (job === undefined) return;
          inFlight++;
          try {
            if (stream === undefined) {
              const bi = await conn.openBi({ signal });
              stream = { reader: new FrameReader(bi.readable), writer: new FrameWriter(bi.writable) };
            }
            if (job.kind === 'table') {
              const f = this.files[job.file]!;
              await this.#fetchTable(stream, f, signal);
              if (f.rehash) await this.#rehash(f);
              if (countBits(f.state.bits, f.chunks) === f.chunks) await this.#finishFile(f);
              else jobs.push(...this.#ranges(f, per));
            } else {
              const rest = await this.#fetchRange(stream, job, aead, signal);
              if (rest.length > 0) jobs.unshift(...rest.map((c) => ({ kind: 'range' as const, file: job.file, first: c, count: 1 })));
            }
          } catch (err) {
            drop();
            if (isDiskFull(err)) {
              jobs.unshift(job);
              this.#diskFull();
            } else if (err instanceof TransferError || signal.aborted || conn.isClosed) {
              failure ??= signal.aborted ? signal.reason : err instanceof TransferError ? err : new InterruptedError('The connection closed', err);
              throw failure;
            } else {
              // The stream broke (reset, idle): the job goes back, a new stream is opened.
              jobs.unshift(job);
              this.#hooks.log.debug('pull stream failed, reopening', { error: String(err) });
              if (this.#bump(`stream`) > 100) throw (failure = new InterruptedError('Pull streams keep failing', err));
            }
          } finally {
            inFlight--;
            wake();
          }
        }
      } finally {
        signal.removeEventListener('abort', onAbort);
        if (stream !== undefined) {
          const s = stream;
          stream = undefined;
          await s.writer.close().catch(() => undefined);
          s.reader.release();
        }
      }
    };
    const results = await Promise.allSettled(Array.from({ length: streams }, () => worker()));
    for (const r of results) if (r.status === 'rejected') throw failure ?? r.reason;
    if (failure !== undefined) throw failure;
    for (const f of this.files) if (f.entry.kind === 'file' && !f.state.done) throw new InterruptedError(`${f.entry.path} is not complete`);
  }

  #bump(key: string): number {
    const n = (this.#retries.get(key) ?? 0) + 1;
    this.#retries.set(key, n);
    return n;
  }

  async #readReply(reader: FrameReader, max: number, signal: AbortSignal): Promise<Uint8Array> {
    const frame = await reader.readFrame(max, { signal: AbortSignal.any([signal, AbortSignal.timeout(XFER_IDLE_TIMEOUT_MS)]) });
    if (frame === undefined) throw new InterruptedError('The sender closed a pull stream');
    if (frame[0] === FRAME_CONTROL && frame.length <= XFER_MAX_CONTROL_BYTES) {
      const m = decodeControl(frame);
      if (m.t === 'fail') {
        const known = ['ERR_TRANSFER_SOURCE_CHANGED', 'ERR_TRANSFER_UNKNOWN', 'ERR_TRANSFER_CANCELLED'];
        throw new TransferError(known.includes(m.code) ? (m.code as 'ERR_TRANSFER_SOURCE_CHANGED') : 'ERR_TRANSFER_FAILED', `The sender failed: ${m.reason}`);
      }
      throw new TransferError('ERR_TRANSFER_MALFORMED', `Unexpected ${m.t} on a pull stream`);
    }
    return frame;
  }

  async #fetchTable(s: { reader: FrameReader; writer: FrameWriter }, f: IncomingFile, signal: AbortSignal): Promise<void> {
    await s.writer.write(encodeControl({ t: 'table', id: this.id, file: f.index }));
    const frame = await this.#readReply(s.reader, 1 + XFER_MAX_CHUNKS_PER_FILE * HASH_BYTES, signal);
    if (frame[0] !== FRAME_TABLE) throw new TransferError('ERR_TRANSFER_MALFORMED', 'Expected a table frame');
    const table = frame.slice(1);
    if (table.length !== f.chunks * HASH_BYTES) throw new TransferError('ERR_TRANSFER_TABLE_MISMATCH', `${f.entry.path}: the table has ${table.length / HASH_BYTES} entries, the file ${f.chunks} chunks`);
    // pairing-transfer.md B.3: the table is checked against the root before any chunk is accepted.
    if (toHex(fileRoot(f.entry.size, this.manifest.chunkSize, table, this.#provider)) !== f.entry.root) throw new TransferError('ERR_TRANSFER_TABLE_MISMATCH', `${f.entry.path}: the chunk table does not match the root in the offer`);
    f.table = table;
    this.#tablesDirty = true;
  }

  /** Pull one range; returns the chunks to ask again (bad tag or hash). */
  async #fetchRange(s: { reader: FrameReader; writer: FrameWriter }, job: { file: number; first: number; count: number }, aead: Aead, signal: AbortSignal): Promise<number[]> {
    const f = this.files[job.file]!;
    const cs = this.manifest.chunkSize;
    const fh = await this.#partHandle(f);
    await s.writer.write(encodeControl({ t: 'get', id: this.id, file: f.index, first: job.first, count: job.count }));
    const again: number[] = [];
    for (let k = 0; k < job.count; k++) {
      const i = job.first + k;
      const len = Math.min(cs, f.entry.size - i * cs);
      const frame = await this.#readReply(s.reader, CHUNK_HEADER_BYTES + cs + TAG_BYTES, signal);
      const c = openChunk(aead, this.idBytes, frame);
      const ok =
        c.plain !== null &&
        c.file === f.index &&
        c.chunk === i &&
        c.last === (i === f.chunks - 1) &&
        c.plain.length === len &&
        Buffer.compare(this.#provider.hash('sha256', c.plain), f.table!.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)) === 0;
      if (!ok) {
        const why = c.plain === null ? 'failed to open (bad tag)' : c.file !== f.index || c.chunk !== i ? `came for the wrong position (${c.file}/${c.chunk})` : 'does not match its table entry';
        const n = this.#bump(`${f.index}/${i}`);
        this.#hooks.log.warn('chunk rejected, asking again', { file: f.entry.path, chunk: i, why, tries: n });
        this.#hooks.progress('chunk-rejected', { file: f.entry.path, chunk: i, reason: why });
        if (n > XFER_MAX_CHUNK_RETRIES) throw new TransferError('ERR_TRANSFER_CORRUPT', `${f.entry.path}: chunk ${i} ${why}, ${n} times; giving up (nothing unverified was written)`);
        again.push(i);
        continue;
      }
      if (hasBit(f.state.bits, i)) continue;
      let written = 0;
      while (written < len) {
        const { bytesWritten } = await fh.write(c.plain!, written, len - written, i * cs + written);
        written += bytesWritten;
      }
      setBit(f.state.bits, i);
      this.bytesDone += len;
      this.#bytesSinceSave += len;
      this.#hooks.progress('transferring');
      if (this.#bytesSinceSave >= XFER_STATE_SAVE_BYTES) {
        this.#lastSaveAt = performance.now();
        await this.save();
      }
      if (countBits(f.state.bits, f.chunks) === f.chunks) await this.#finishFile(f);
    }
    return again;
  }

  /** All chunks in: times and mode, fsync, a no-clobber rename, fsync of the directory. */
  #finishFile(f: IncomingFile): Promise<void> {
    if (f.state.done) return Promise.resolve();
    f.finishing ??= this.#finish(f).finally(() => {
      f.finishing = undefined;
    });
    return f.finishing;
  }

  async #finish(f: IncomingFile): Promise<void> {
    const fh = await this.#partHandle(f);
    if ((await fh.stat()).size !== f.entry.size) await fh.truncate(f.entry.size);
    await fh.chmod(f.entry.mode);
    await fh.utimes(Date.now() / 1000, utimeSeconds(f.entry.mtimeUs));
    await fh.sync();
    await fh.close();
    f.fh = undefined;
    const dir = dirname(f.target);
    const ext = extname(f.target);
    const stem = basename(f.target, ext);
    for (let n = 0; ; n++) {
      const candidate = n === 0 ? f.target : join(dir, `${stem} (${n})${ext}`);
      try {
        await link(f.part, candidate);
        f.finalPath = candidate;
        break;
      } catch (err) {
        if (errno(err) !== 'EEXIST' || n >= 1000) throw err;
      }
    }
    await unlink(f.part);
    await fsyncDir(dir);
    f.state.done = true;
    this.filesDone++;
    this.#hooks.progress('file-done', { file: f.entry.path, path: f.finalPath });
  }

  async #finishDirs(): Promise<void> {
    const dirs = this.files.filter((f) => f.entry.kind === 'dir').sort((a, b) => b.entry.path.split('/').length - a.entry.path.split('/').length);
    for (const d of dirs) {
      const path = await ensureDirUnder(this.dest, d.entry.path.split('/'));
      await chmod(path, d.entry.mode);
      await utimes(path, Date.now() / 1000, utimeSeconds(d.entry.mtimeUs));
    }
  }
}

export type { PublicKey };
