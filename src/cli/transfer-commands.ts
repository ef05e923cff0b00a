/**
 * `sdnet send` and `sdnet transfers` (shared/docs/cli.md). `send` runs through the `up` of
 * its data dir when one runs (it starts the transfer there and polls its progress over the
 * control socket), else in-process; either way it waits until the receiver verified
 * everything, waiting for the receiver and resuming if it goes away, up to `--timeout`.
 *
 * @module
 */
import { resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import type { NetworkingService } from '../service/networking-service.ts';
import type { TransferProgress, TransferResult } from '../service/modules.ts';
import type { TransferInfo } from '../protocols/transfer/transfer.ts';
import { SdnetError } from '../util/errors.ts';
import { CONTROL_COMMANDS } from './control-commands.ts';
import { viaService, withService } from './device-commands.ts';
import { resolveDataDir, resolveRelays } from './data-dir.ts';
import { UsageError, type CliIo } from './io.ts';
import { parseCommandArgs } from './help.ts';

const DEFAULT_SEND_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 250;

/** What a poll of a send shows. */
interface SendStatus {
  transferId: string | null;
  stage: string;
  bytesDone: number;
  bytesTotal: number;
  files: number;
  rate?: number;
  etaMs?: number;
  error?: { code: string; message: string };
  result?: TransferResult & { name: string | null };
}

/** Sends started through the control socket, by job id (kept until polled to the end). */
const jobs = new Map<string, SendStatus>();
let jobCounter = 0;

function transferModuleOf(service: NetworkingService): NonNullable<NetworkingService['transfer']> {
  const t = service.transfer;
  if (t === undefined) throw new SdnetError('ERR_TRANSFER_UNAVAILABLE', 'File transfer is not available in this build');
  return t;
}

/** Start a send; `status` follows it. */
function startSend(service: NetworkingService, device: string, paths: string[], timeoutMs: number, status: SendStatus, signal?: AbortSignal): Promise<void> {
  const name = service.device(device).name ?? null;
  let id: string | null = null;
  const off = service.on('transfer-progress', (p: TransferProgress) => {
    if (p.direction !== 'send' || (id !== null && p.transferId !== id) || (id === null && p.transferId !== '-')) return;
    status.stage = p.stage;
    if (p.stage !== 'hashing') {
      status.bytesDone = p.bytesDone ?? status.bytesDone;
      status.bytesTotal = p.bytesTotal ?? status.bytesTotal;
      status.files = p.files ?? status.files;
    }
    if (typeof p.rate === 'number') status.rate = p.rate;
    if (typeof p.etaMs === 'number') status.etaMs = p.etaMs;
    if (p.error) status.error = p.error;
  });
  return service
    .shareWithDevice(device, paths, {
      timeoutMs,
      ...(signal ? { signal } : {}),
      onStart: (tid: string) => {
        id = tid;
        status.transferId = tid;
      },
    })
    .then(
      (r) => {
        status.stage = 'completed';
        status.result = { ...r, name };
      },
      (err: unknown) => {
        status.stage = status.stage === 'cancelled' ? 'cancelled' : 'failed';
        const e = err as { code?: unknown; message?: unknown };
        status.error = { code: typeof e?.code === 'string' ? e.code : 'ERR_TRANSFER_FAILED', message: typeof e?.message === 'string' ? e.message : String(err) };
      },
    )
    .finally(off);
}

CONTROL_COMMANDS.set('transfer-send', async (service, args) => {
  const device = args.device;
  const paths = args.paths;
  if (typeof device !== 'string' || !Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string')) throw new SdnetError('ERR_CONTROL_BAD_REQUEST', 'transfer-send takes a device and paths');
  const timeoutMs = typeof args.timeoutMs === 'number' && args.timeoutMs > 0 ? args.timeoutMs : DEFAULT_SEND_TIMEOUT_MS;
  const job = `send-${++jobCounter}`;
  const status: SendStatus = { transferId: null, stage: 'hashing', bytesDone: 0, bytesTotal: 0, files: 0 };
  service.device(device); // unknown / ambiguous: fails here, with its code
  jobs.set(job, status);
  void startSend(service, device, paths as string[], timeoutMs, status);
  return { job };
});

CONTROL_COMMANDS.set('transfer-poll', (_service, args) => {
  const status = typeof args.job === 'string' ? jobs.get(args.job) : undefined;
  if (status === undefined) throw new SdnetError('ERR_TRANSFER_NOT_FOUND', 'No such send');
  if (status.result !== undefined || status.stage === 'failed' || status.stage === 'cancelled') jobs.delete(args.job as string);
  return Promise.resolve(status);
});

CONTROL_COMMANDS.set('transfers', (service) => Promise.resolve(transferModuleOf(service).list?.() ?? []));
for (const action of ['pause', 'resume', 'cancel'] as const) {
  CONTROL_COMMANDS.set(`transfer-${action}`, async (service, args) => {
    if (typeof args.id !== 'string') throw new SdnetError('ERR_CONTROL_BAD_REQUEST', 'id is missing');
    const t = transferModuleOf(service);
    const fn = t[action];
    if (fn === undefined) throw new SdnetError('ERR_TRANSFER_UNAVAILABLE', `${action} is not available`);
    return fn.call(t, args.id);
  });
}

// ------------------------------------------------------------------ output

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function fmtEta(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '--:--';
  const s = Math.round(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** Progress as the CLI shows it: a bar redrawn in place on a TTY, a line per 10 % otherwise. */
class ProgressPrinter {
  readonly #io: CliIo;
  readonly #json: boolean;
  #lastDecile = -1;
  #lastStage = '';
  #drawn = false;
  constructor(io: CliIo, json: boolean) {
    this.#io = io;
    this.#json = json;
  }
  update(s: SendStatus): void {
    const pct = s.bytesTotal > 0 ? Math.floor((s.bytesDone / s.bytesTotal) * 100) : s.stage === 'completed' ? 100 : 0;
    const decile = Math.floor(pct / 10);
    const stageChanged = s.stage !== this.#lastStage;
    this.#lastStage = s.stage;
    if (this.#json) {
      if (decile !== this.#lastDecile || stageChanged) this.#io.stdout(`${JSON.stringify({ event: 'progress', id: s.transferId, stage: s.stage, bytes: s.bytesDone, total: s.bytesTotal, rate: s.rate ?? null, etaMs: s.etaMs ?? null, ...(s.error ? { error: s.error } : {}) })}\n`);
      this.#lastDecile = decile;
      return;
    }
    if (this.#io.stderrIsTTY === true) {
      const width = 30;
      const fill = Math.round((pct / 100) * width);
      const bar = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${fmtBytes(s.bytesDone)}/${fmtBytes(s.bytesTotal)} ${s.rate ? `${fmtBytes(s.rate)}/s` : ''} ETA ${fmtEta(s.etaMs)} ${s.stage === 'transferring' ? '' : s.stage}`;
      this.#io.stderr(`\r${bar.padEnd(100)}`);
      this.#drawn = true;
      if (stageChanged && s.stage === 'paused' && s.error && s.error.code !== 'ERR_DISK_FULL') this.#io.stderr(`\nsdnet send: paused: ${s.error.message}\n`);
      return;
    }
    if (stageChanged && ((s.stage === 'paused' && s.error?.code !== 'ERR_DISK_FULL') || s.stage === 'waiting')) this.#io.stderr(`${s.stage}${s.error && s.stage === 'paused' ? `: ${s.error.message}` : s.stage === 'waiting' ? ': the receiver is away, waiting to resume' : ''}\n`);
    if (decile !== this.#lastDecile && s.bytesTotal > 0) {
      this.#io.stderr(`${pct}% ${fmtBytes(s.bytesDone)}/${fmtBytes(s.bytesTotal)}${s.rate ? ` ${fmtBytes(s.rate)}/s` : ''} ETA ${fmtEta(s.etaMs)}\n`);
      this.#lastDecile = decile;
    }
  }
  end(): void {
    if (this.#drawn) this.#io.stderr('\n');
  }
}

// ------------------------------------------------------------------ sdnet send

/**
 * The error `sdnet send` ends with when the receiver paused the transfer for lack of disk
 * space (exit 1, one line; shared/docs/cli.md "errors"), or undefined. Nothing is lost: the
 * receiver keeps the verified chunks, and the transfer resumes from them.
 */
function diskFull(status: SendStatus, where: 'in-process' | 'up'): SdnetError | undefined {
  if (status.stage !== 'paused' || status.error?.code !== 'ERR_DISK_FULL') return undefined;
  const then = where === 'up' ? 'it stays paused in sdnet up and goes on by itself once space is free' : 'the same sdnet send resumes it once space is free';
  return new SdnetError('ERR_DISK_FULL', `the receiver's disk is full (${status.error.message.replace(/; free space and the transfer resumes$/, '')}); ${then}`);
}

export async function send(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('send', { args, options: { data: { type: 'string' }, json: { type: 'boolean' }, relay: { type: 'string', multiple: true }, timeout: { type: 'string' }, 'no-start': { type: 'boolean' } }, allowPositionals: true });
  if (positionals.length < 2) throw new UsageError('usage: sdnet send <device> <path>...');
  let timeoutMs = DEFAULT_SEND_TIMEOUT_MS;
  if (values.timeout !== undefined) {
    timeoutMs = Number(values.timeout);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout takes a number of milliseconds');
  }
  const device = positionals[0]!;
  const paths = positionals.slice(1).map((p) => resolve(p));
  for (const p of paths) {
    try {
      await stat(p);
    } catch {
      throw new UsageError(`${p}: no such file or directory`);
    }
  }
  const dataDir = resolveDataDir(values.data, io.env);
  const printer = new ProgressPrinter(io, values.json === true);
  const finalStatus = await viaService<SendStatus | { job: string }>(
    dataDir,
    'transfer-send',
    { device, paths, timeoutMs },
    () =>
      withService(dataDir, resolveRelays(values.relay, io.env), async (service) => {
        const status: SendStatus = { transferId: null, stage: 'hashing', bytesDone: 0, bytesTotal: 0, files: 0 };
        // The receiver's disk is full: stop waiting, keep the transfer (the stream is shut, not
        // cancelled, so both sides keep what they have) and say so; a later send resumes it.
        const detach = new AbortController();
        const running = startSend(service, device, paths, timeoutMs, status, AbortSignal.any([io.signal, detach.signal]));
        const timer = setInterval(() => {
          const full = diskFull(status, 'in-process');
          if (full !== undefined && !detach.signal.aborted) detach.abort(full);
          printer.update(status);
        }, POLL_MS);
        try {
          await running;
        } finally {
          clearInterval(timer);
        }
        return status;
      }),
    values['no-start'] === true,
  );
  let status: SendStatus;
  if ('job' in finalStatus) {
    const job = finalStatus.job;
    const { callControl } = await import('./control.ts');
    const { controlSocketPath } = await import('./data-dir.ts');
    for (;;) {
      const r = await callControl(controlSocketPath(dataDir), 'transfer-poll', { job }, { timeoutMs: 30_000 });
      if (!r.running) throw new SdnetError('ERR_TRANSFER_FAILED', 'The running sdnet up went away during the send');
      status = r.result as SendStatus;
      printer.update(status);
      if (status.result !== undefined || status.stage === 'failed' || status.stage === 'cancelled') break;
      const full = diskFull(status, 'up');
      if (full !== undefined) {
        printer.end();
        throw full;
      }
      if (io.signal.aborted) {
        if (status.transferId) await callControl(controlSocketPath(dataDir), 'transfer-cancel', { id: status.transferId }, { timeoutMs: 10_000 }).catch(() => undefined);
        throw new SdnetError('ERR_TRANSFER_CANCELLED', 'interrupted');
      }
      await new Promise((r2) => setTimeout(r2, POLL_MS));
    }
  } else status = finalStatus;
  printer.update(status);
  printer.end();
  if (status.result === undefined) {
    const e = status.error ?? { code: 'ERR_TRANSFER_FAILED', message: 'the transfer failed' };
    throw new SdnetError(e.code, e.message);
  }
  const r = status.result;
  io.stdout(values.json ? `${JSON.stringify({ event: 'done', id: r.transferId, files: r.files, bytes: r.bytes })}\n` : `sent ${r.files} files, ${r.bytes} bytes, verified by ${r.name ?? 'the receiver'}\n`);
  return 0;
}

// ------------------------------------------------------------------ sdnet transfers

export async function transfers(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('transfers', { args, options: { data: { type: 'string' }, json: { type: 'boolean' }, relay: { type: 'string', multiple: true }, 'no-start': { type: 'boolean' } }, allowPositionals: true });
  const noStart = values['no-start'] === true;
  const dataDir = resolveDataDir(values.data, io.env);
  const [action, id] = positionals;
  if (action !== undefined) {
    if (!['pause', 'resume', 'cancel'].includes(action) || id === undefined || positionals.length !== 2) throw new UsageError('usage: sdnet transfers [pause|resume|cancel <id>]');
    const cmd = `transfer-${action}`;
    const r = await viaService<TransferInfo>(dataDir, cmd, { id }, () => withService(dataDir, resolveRelays(values.relay, io.env), async (s) => (await CONTROL_COMMANDS.get(cmd)!(s, { id })) as TransferInfo), noStart);
    io.stdout(values.json ? `${JSON.stringify(r)}\n` : `${action === 'cancel' ? 'cancelled' : action === 'pause' ? 'paused' : 'resumed'} ${r.id.slice(0, 8)}\n`);
    return 0;
  }
  const list = await viaService<TransferInfo[]>(dataDir, 'transfers', {}, () => withService(dataDir, resolveRelays(values.relay, io.env), async (s) => (await CONTROL_COMMANDS.get('transfers')!(s, {})) as TransferInfo[]), noStart);
  if (values.json) {
    io.stdout(`${JSON.stringify(list)}\n`);
    return 0;
  }
  if (list.length === 0) {
    io.stdout('no transfers\n');
    return 0;
  }
  const rows = [['ID', 'DIR', 'PEER', 'STATE', 'FILES', 'PROGRESS'], ...list.map((t) => [t.id.slice(0, 8), t.direction === 'send' ? 'out' : 'in', t.peer.name ?? t.peer.endpointId.slice(0, 10), t.state + (t.error ? ` (${t.error.code})` : ''), `${t.filesDone}/${t.files}`, `${t.bytesTotal > 0 ? Math.floor((t.bytesDone / t.bytesTotal) * 100) : 100}% ${fmtBytes(t.bytesDone)}/${fmtBytes(t.bytesTotal)}`])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) io.stdout(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
  return 0;
}
