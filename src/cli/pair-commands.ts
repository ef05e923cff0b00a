/**
 * `sdnet pair` (shared/docs/cli.md): `invite`, `join`, and `status`, `cancel`, `vouch`,
 * `accept` / `refuse`.
 *
 * Like the other device commands, each reaches the running `sdnet up` of its data dir over
 * the control socket, and runs the service in-process for its own duration when none runs
 * (so `sdnet pair invite` works with nothing else started).
 *
 * Exit status: `invite` 0 paired, 1 expired / burnt / cancelled; `join` 0 paired, 1 wrong
 * code, not found, timed out, 2 malformed code (checked before anything touches the
 * network). Errors are one line on stderr, `sdnet pair: <what>` followed by the stable code.
 *
 * @module
 */
import { parseCommandArgs } from './help.ts';
import { ServiceLockedError } from '../service/lock.ts';
import { NetworkingService } from '../service/networking-service.ts';
import type { DeviceSnapshot } from '../service/device-registry.ts';
import type { PairingInvite, PairingSessionStatus, VouchResult } from '../service/modules.ts';
import { parsePairingInput } from '../protocols/pairing/code.ts';
import { PAIRING_ERROR_TEXT, PairingError, isPairingErrorCode } from '../protocols/pairing/errors.ts';
import { PAIRING_CODE_TTL_MS } from '../protocols/limits.ts';
import { SdnetError } from '../util/errors.ts';
import type { LogEntry, LogSink } from '../util/log.ts';
import { callControl, startControlServer, type ControlServer } from './control.ts';
import { execute, serviceNotRunning } from './device-commands.ts';
import { CONTROL_COMMANDS } from './control-commands.ts';
import { controlSocketPath, resolveDataDir, resolveRelays } from './data-dir.ts';
import { cliModules } from './modules.ts';
import { renderQr } from './qr.ts';
import { UsageError, type CliIo } from './io.ts';

/** How long an in-process initiator waits for its home relay before showing the code (ms). */
const ONLINE_WAIT_MS = 5_000;
/** Default time `pair join` looks for the initiator and tries (ms). */
const JOIN_TIMEOUT_MS = 30_000;
/** Invites kept for `pair-wait` after they end (ms). */
const INVITE_KEEP_MS = 10 * 60_000;

const COMMON = {
  data: { type: 'string' },
  json: { type: 'boolean' },
  relay: { type: 'string', multiple: true },
  bind: { type: 'string', multiple: true },
  verbose: { type: 'boolean', short: 'v' },
  'no-start': { type: 'boolean' },
} as const;

const shortId = (id: string): string => id.slice(0, 10);

interface PairedRow {
  id: string;
  deviceId: string | null;
  name: string | null;
}

const pairedRow = (d: DeviceSnapshot): PairedRow => ({ id: d.endpointId, deviceId: d.deviceId ?? null, name: d.name ?? null });

// ------------------------------------------------------------------ what the service runs

/** Invites started through the control socket, by session id (for `pair-wait`, `pair-cancel`). */
const invites = new Map<string, PairingInvite>();

CONTROL_COMMANDS.set('pair-invite', async (service) => {
  const invite = await service.startPairingAsInitiator();
  invites.set(invite.sessionId, invite);
  const forget = setTimeout(() => invites.delete(invite.sessionId), INVITE_KEEP_MS + (invite.expiresAt - Date.now()));
  forget.unref?.();
  return { sessionId: invite.sessionId, code: invite.code, expiresAt: invite.expiresAt, qr: invite.qr ?? null };
});

CONTROL_COMMANDS.set('pair-wait', async (_service, args) => {
  const invite = typeof args.sessionId === 'string' ? invites.get(args.sessionId) : undefined;
  if (invite === undefined) throw new SdnetError('ERR_PAIRING_NOT_FOUND', 'No such pairing session');
  return { paired: pairedRow(await invite.paired) };
});

CONTROL_COMMANDS.set('pair-cancel', async (service, args) => {
  if (typeof args.sessionId !== 'string') throw new SdnetError('ERR_CONTROL_BAD_REQUEST', 'sessionId is missing');
  return { cancelled: service.cancelPairing(args.sessionId) };
});

CONTROL_COMMANDS.set('pair-join', async (service, args) => {
  if (typeof args.input !== 'string') throw new SdnetError('ERR_CONTROL_BAD_REQUEST', 'input is missing');
  const d = await service.startPairingAsJoiner(args.input, {
    ...(typeof args.nodeId === 'string' ? { nodeId: args.nodeId } : {}),
    timeoutMs: typeof args.timeoutMs === 'number' && args.timeoutMs > 0 ? args.timeoutMs : JOIN_TIMEOUT_MS,
  });
  return { paired: pairedRow(d) };
});

CONTROL_COMMANDS.set('pair-status', async (service) => service.pairingStatus());

CONTROL_COMMANDS.set('pair-vouch', async (service, args) => {
  if (typeof args.vouchee !== 'string' || !Array.isArray(args.targets)) throw new SdnetError('ERR_CONTROL_BAD_REQUEST', 'vouchee and targets are needed');
  return service.vouch(args.vouchee, args.targets.map(String));
});

CONTROL_COMMANDS.set('pair-confirm-vouch', async (service, args) => {
  if (typeof args.id !== 'string') throw new SdnetError('ERR_CONTROL_BAD_REQUEST', 'id is missing');
  return { found: service.confirmVouch(args.id, args.accept === true) };
});

// ------------------------------------------------------------------ plumbing

interface Common {
  dataDir: string;
  json: boolean;
  relays: string[];
  bind: string[] | undefined;
  verbose: boolean;
  /** `--no-start`: fail when no `sdnet up` runs instead of running the service in-process. */
  noStart: boolean;
}

function common(values: { data?: string | undefined; json?: boolean | undefined; relay?: string[] | undefined; bind?: string[] | undefined; verbose?: boolean | undefined; 'no-start'?: boolean | undefined }, io: CliIo): Common {
  return {
    dataDir: resolveDataDir(values.data, io.env),
    json: values.json === true,
    relays: resolveRelays(values.relay, io.env),
    bind: values.bind,
    verbose: values.verbose === true || io.env.SDNET_LOG === 'debug',
    noStart: values['no-start'] === true,
  };
}

/** Ask the running `up`; undefined when none runs. */
async function viaUp<T>(c: Common, cmd: string, args: Record<string, unknown>, timeoutMs: number): Promise<{ result: T } | undefined> {
  const r = await callControl(controlSocketPath(c.dataDir), cmd, args, { timeoutMs });
  return r.running ? { result: r.result as T } : undefined;
}

/** Run the service in-process for `fn` (no `up` runs); waits for a moment if an `up` is just starting. */
async function inProcess<T>(c: Common, io: CliIo, fn: (service: NetworkingService) => Promise<T>): Promise<T> {
  if (c.noStart) throw serviceNotRunning(c.dataDir);
  const log: LogSink = (e: LogEntry) => {
    if (!c.verbose && e.level !== 'error') return;
    io.stderr(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
  };
  let service: NetworkingService | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      service = await NetworkingService.create({ dataDir: c.dataDir, relays: c.relays, ...(c.bind ? { bind: c.bind } : {}), modules: cliModules(), log });
      break;
    } catch (err) {
      if (!(err instanceof ServiceLockedError) || attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  let control: ControlServer | undefined;
  try {
    await service.start();
    // While we run, the other commands of this data dir (`sdnet devices`, …) reach us.
    control = await startControlServer(controlSocketPath(c.dataDir), (cmd, a) => execute(service, cmd, a)).catch(() => undefined);
    return await fn(service);
  } finally {
    await control?.close();
    await service.shutdown();
  }
}

/** The line and exit code of a failure; `--json` adds an error object on stdout. */
function failure(io: CliIo, json: boolean, err: unknown): number {
  const code = (err as { code?: unknown })?.code;
  const text = isPairingErrorCode(code) ? ((err as Error).message || PAIRING_ERROR_TEXT[code]) : err instanceof Error ? err.message.split('\n')[0]! : String(err);
  io.stderr(`sdnet pair: ${text}${typeof code === 'string' ? ` (${code})` : ''}\n`);
  if (json) io.stdout(`${JSON.stringify({ error: { code: typeof code === 'string' ? code : 'ERR_INTERNAL', message: text } })}\n`);
  if (code === 'ERR_PAIRING_CODE_MALFORMED') return 2;
  if (err instanceof UsageError || code === 'ERR_DEVICE_UNKNOWN' || code === 'ERR_DEVICE_AMBIGUOUS' || code === 'ERR_IDENTITY_MALFORMED') return 2;
  return 1;
}

// ------------------------------------------------------------------ sdnet pair invite

async function invite(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('pair invite', { args, options: COMMON, allowPositionals: true });
  if (positionals.length > 0) throw new UsageError('usage: sdnet pair invite [--json] [--relay URL]... [--bind ADDR]...');
  const c = common(values, io);
  const show = (o: { code: string; expiresAt: number; qr: string | null }): void => {
    io.stdout(c.json ? `${JSON.stringify({ code: o.code, expiresAt: new Date(o.expiresAt).toISOString(), qr: o.qr })}\n` : `${o.code}\n`);
    if (!c.json) io.stderr(`Type these 12 words on the other device (sdnet pair join …); valid for ${Math.round((o.expiresAt - Date.now()) / 60_000)} minutes.\n`);
    if (io.stderrIsTTY && o.qr !== null) io.stderr(`${renderQr(o.qr)}\n`);
  };
  const done = (row: PairedRow): number => {
    io.stdout(c.json ? `${JSON.stringify({ paired: row })}\n` : `paired with ${row.name ?? '?'} (${shortId(row.id)})\n`);
    return 0;
  };
  try {
    // The running `up` shows the code and pairs; we wait with it.
    const started = await viaUp<{ sessionId: string; code: string; expiresAt: number; qr: string | null }>(c, 'pair-invite', {}, 30_000);
    if (started !== undefined) {
      show(started.result);
      const sessionId = started.result.sessionId;
      const onAbort = (): void => void callControl(controlSocketPath(c.dataDir), 'pair-cancel', { sessionId }).catch(() => undefined);
      io.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const r = await viaUp<{ paired: PairedRow }>(c, 'pair-wait', { sessionId }, PAIRING_CODE_TTL_MS + 60_000);
        if (r === undefined) throw new SdnetError('ERR_PAIRING_CANCELLED', 'the running service went away');
        return done(r.result.paired);
      } finally {
        io.signal.removeEventListener('abort', onAbort);
      }
    }
    return await inProcess(c, io, async (service) => {
      if (c.relays.length > 0) {
        try {
          await service.endpoint.online({ signal: AbortSignal.any([io.signal, AbortSignal.timeout(ONLINE_WAIT_MS)]) });
        } catch {
          io.stderr('sdnet pair: no relay reachable yet; the code works on the LAN and by QR until one is\n');
        }
      }
      service.on('pairing-progress', (p) => {
        if (p.role !== 'initiator') return;
        if (p.stage === 'failed' && p.error) io.stderr(`sdnet pair: ${p.error.message} from ${shortId(p.peer?.endpointId ?? '?')}${typeof p.attemptsLeft === 'number' ? ` (${p.attemptsLeft} tries left)` : ''}\n`);
      });
      const inv = await service.startPairingAsInitiator(io.signal.aborted ? {} : { signal: io.signal });
      show({ code: inv.code, expiresAt: inv.expiresAt, qr: inv.qr ?? null });
      return done(pairedRow(await inv.paired));
    });
  } catch (err) {
    return failure(io, c.json, err);
  }
}

// ------------------------------------------------------------------ sdnet pair join

async function join(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('pair join', { args, options: { ...COMMON, 'node-id': { type: 'string' }, timeout: { type: 'string' } }, allowPositionals: true });
  const c = common(values, io);
  if (positionals.length === 0) throw new UsageError('usage: sdnet pair join <word>... [--node-id ID] [--json]');
  const input = positionals.join(' ');
  let timeoutMs = JOIN_TIMEOUT_MS;
  if (values.timeout !== undefined) {
    timeoutMs = Number(values.timeout);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout takes a number of milliseconds');
  }
  try {
    // A typo is caught here, before anything touches the network (exit 2).
    parsePairingInput(input, values['node-id']);
    const cmdArgs = { input, timeoutMs, ...(values['node-id'] !== undefined ? { nodeId: values['node-id'] } : {}) };
    const viaRunning = await viaUp<{ paired: PairedRow }>(c, 'pair-join', cmdArgs, timeoutMs + 30_000);
    const row =
      viaRunning?.result.paired ??
      (await inProcess(c, io, async (service) => {
        const d = await service.startPairingAsJoiner(input, { ...(values['node-id'] !== undefined ? { nodeId: values['node-id'] } : {}), timeoutMs, signal: io.signal });
        return pairedRow(d);
      }));
    io.stdout(c.json ? `${JSON.stringify({ paired: row })}\n` : `paired with ${row.name ?? '?'} (${shortId(row.id)})\n`);
    return 0;
  } catch (err) {
    return failure(io, c.json, err);
  }
}

// ------------------------------------------------------------------ status, cancel, vouch, accept

async function status(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('pair status', { args, options: COMMON, allowPositionals: false });
  const c = common(values, io);
  const r = await viaUp<PairingSessionStatus[]>(c, 'pair-status', {}, 10_000);
  const rows = r?.result ?? [];
  if (c.json) {
    io.stdout(`${JSON.stringify(rows)}\n`);
    return 0;
  }
  if (r === undefined) io.stderr('sdnet pair: no sdnet up runs on this data dir; no sessions\n');
  for (const s of rows) {
    const extra = [s.attemptsLeft !== undefined ? `${s.attemptsLeft} tries left` : '', s.expiresAt !== undefined && s.state === 'waiting' ? `expires ${new Date(s.expiresAt).toISOString()}` : '', s.peer ? `peer ${s.peer.name ?? shortId(s.peer.endpointId)}` : '', s.error ? s.error.code : ''].filter((x) => x !== '');
    io.stdout(`${s.sessionId}  ${s.role.padEnd(9)}  ${s.state.padEnd(10)}  ${extra.join(', ')}\n`);
  }
  return 0;
}

async function cancel(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('pair cancel', { args, options: COMMON, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError('usage: sdnet pair cancel <session>');
  const c = common(values, io);
  const r = await viaUp<{ cancelled: boolean }>(c, 'pair-cancel', { sessionId: positionals[0]! }, 10_000);
  if (r === undefined || !r.result.cancelled) {
    io.stderr(`sdnet pair: no pairing session ${positionals[0]} is running\n`);
    return 1;
  }
  io.stdout(c.json ? `${JSON.stringify({ cancelled: true })}\n` : 'cancelled\n');
  return 0;
}

async function vouch(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('pair vouch', { args, options: COMMON, allowPositionals: true });
  if (positionals.length < 2) throw new UsageError('usage: sdnet pair vouch <device> <target>...');
  const c = common(values, io);
  const cmdArgs = { vouchee: positionals[0]!, targets: positionals.slice(1) };
  try {
    const r = await viaUp<VouchResult[]>(c, 'pair-vouch', cmdArgs, 120_000);
    const results = r?.result ?? (await inProcess(c, io, (service) => service.vouch(cmdArgs.vouchee, cmdArgs.targets)));
    if (c.json) io.stdout(`${JSON.stringify(results)}\n`);
    else for (const v of results) io.stdout(`${v.target.name ?? shortId(v.target.endpointId)}: ${v.accepted ? 'accepted' : `not accepted${v.error ? ` (${v.error.message})` : ''}`}\n`);
    return results.every((v) => v.accepted) ? 0 : 1;
  } catch (err) {
    return failure(io, c.json, err);
  }
}

async function confirm(args: string[], io: CliIo, accept: boolean): Promise<number> {
  const { values, positionals } = parseCommandArgs(`pair ${accept ? 'accept' : 'refuse'}`, { args, options: COMMON, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError(`usage: sdnet pair ${accept ? 'accept' : 'refuse'} <introduction>`);
  const c = common(values, io);
  const r = await viaUp<{ found: boolean }>(c, 'pair-confirm-vouch', { id: positionals[0]!, accept }, 10_000);
  if (r === undefined || !r.result.found) {
    io.stderr(`sdnet pair: no introduction ${positionals[0]} is waiting${r === undefined ? ' (no sdnet up runs on this data dir)' : ''}\n`);
    return 1;
  }
  io.stdout(c.json ? `${JSON.stringify({ [accept ? 'accepted' : 'refused']: true })}\n` : `${accept ? 'accepted' : 'refused'}\n`);
  return 0;
}

/** `sdnet pair <sub> …` */
export async function pair(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'invite':
      return invite(rest, io);
    case 'join':
      return join(rest, io);
    case 'status':
      return status(rest, io);
    case 'cancel':
      return cancel(rest, io);
    case 'vouch':
      return vouch(rest, io);
    case 'accept':
      return confirm(rest, io, true);
    case 'refuse':
      return confirm(rest, io, false);
    default:
      throw new UsageError('usage: sdnet pair invite|join|status|cancel|vouch|accept|refuse …');
  }
}

export { PairingError };
