/**
 * The device commands of shared/docs/cli.md: `sdnet init`, `sdnet up`, `sdnet devices`,
 * `sdnet msg`, `sdnet unpair` (and `sdnet request`, a request/response round trip).
 *
 * `up` runs the service in the foreground and answers the other commands of its data dir
 * on the control socket; when no `up` runs, a command runs what it needs in-process for its
 * own duration (the registry alone for `devices` and `unpair`, the whole service for `msg`
 * and `request`).
 *
 * @module
 */
import { parseCommandArgs } from './help.ts';
import { resolve } from 'node:path';
import { NetworkIdentity, validateDeviceName } from '../service/identity.ts';
import { DeviceRegistry, type DeviceSnapshot } from '../service/device-registry.ts';
import { DataDirLock, ServiceLockedError } from '../service/lock.ts';
import { NetworkingService } from '../service/networking-service.ts';
import { PublicKey } from '../identity/keys.ts';
import type { JsonValue } from '../protocols/messaging/messages.ts';
import { SdnetError } from '../util/errors.ts';
import type { LogEntry, LogSink } from '../util/log.ts';
import { callControl, startControlServer } from './control.ts';
import { CONTROL_COMMANDS } from './control-commands.ts';
import { cliModules } from './modules.ts';
import { startWebServer, type WebServer } from './web-server.ts';
import { controlSocketPath, resolveDataDir, resolveRelays } from './data-dir.ts';
import { UsageError, type CliIo } from './io.ts';

/** How long `up` waits for its home relay before printing its first line without one (ms). */
const ONLINE_WAIT_MS = 5_000;
/** Default time `msg` and `request` wait for the answer (ms). */
const DEFAULT_TIMEOUT_MS = 10_000;

const DATA = { data: { type: 'string' }, json: { type: 'boolean' }, 'no-start': { type: 'boolean' } } as const;

function shortId(id: string): string {
  return id.slice(0, 10);
}

/** A device as `devices --json` shows it (shared/docs/cli.md). */
export interface DeviceRow {
  id: string;
  deviceId: string | null;
  name: string | null;
  state: string;
  path: 'direct' | 'relay' | null;
  rttMs: number | null;
  lastSeen: string | null;
}

export function deviceRow(d: DeviceSnapshot): DeviceRow {
  return {
    id: d.endpointId,
    deviceId: d.deviceId ?? null,
    name: d.name ?? null,
    state: d.state,
    path: d.state === 'connected' ? (d.connection?.path ?? null) : null,
    rttMs: d.state === 'connected' ? (d.connection?.rttMs ?? null) : null,
    lastSeen: d.lastSeen !== undefined ? new Date(d.lastSeen).toISOString() : null,
  };
}

const fmtMs = (ms: number): string => (ms < 10 ? ms.toFixed(1) : String(Math.round(ms)));

// ------------------------------------------------------------------ commands a service runs

/** What the control socket (of `up`, or of a long in-process command such as `pair invite`) and the in-process fallback can be asked. */
export async function execute(service: NetworkingService, cmd: string, args: Record<string, unknown>): Promise<unknown> {
  const str = (k: string): string => {
    const v = args[k];
    if (typeof v !== 'string') throw new SdnetError('ERR_CONTROL_BAD_REQUEST', `${k} is missing`);
    return v;
  };
  const timeoutMs = typeof args.timeoutMs === 'number' && args.timeoutMs > 0 ? args.timeoutMs : DEFAULT_TIMEOUT_MS;
  switch (cmd) {
    case 'devices':
      return service.devices().map(deviceRow);
    case 'status':
      return service.status();
    case 'msg': {
      const device = service.device(str('device'));
      const { rttMs, messageId } = await service.sendMessage(device.endpointId, str('text'), { contentType: 'text/plain', timeoutMs });
      return { delivered: true, rttMs: Math.round(rttMs * 100) / 100, messageId, name: device.name ?? null };
    }
    case 'request': {
      const device = service.device(str('device'));
      const t0 = performance.now();
      const response = await service.request(device.endpointId, (args.payload ?? null) as JsonValue, { timeoutMs });
      return { response, rttMs: Math.round((performance.now() - t0) * 100) / 100 };
    }
    case 'unpair': {
      const d = await service.unpair(str('device'));
      return { unpaired: true, id: d.endpointId, name: d.name ?? null };
    }
    default: {
      const extra = CONTROL_COMMANDS.get(cmd);
      if (extra !== undefined) return extra(service, args);
      throw new SdnetError('ERR_CONTROL_UNKNOWN_COMMAND', `Unknown command ${cmd}`);
    }
  }
}

/**
 * Run `cmd` in the `up` of `dataDir` if one runs, else `fallback()` in-process. An `up`
 * that holds the lock but has no socket yet (it is starting) gets a moment to open it.
 */
export async function viaService<T>(dataDir: string, cmd: string, args: Record<string, unknown>, fallback: () => Promise<T>, noStart = false): Promise<T> {
  const sock = controlSocketPath(dataDir);
  for (let attempt = 0; ; attempt++) {
    const r = await callControl(sock, cmd, args, { timeoutMs: 120_000 });
    if (r.running) return r.result as T;
    if (noStart) throw serviceNotRunning(dataDir);
    try {
      return await fallback();
    } catch (err) {
      if (!(err instanceof ServiceLockedError) || attempt >= 20) throw err;
      await new Promise((res) => setTimeout(res, 250));
    }
  }
}

/** `--no-start` and no `sdnet up` answers on the data dir's control socket. */
export function serviceNotRunning(dataDir: string): SdnetError {
  return new SdnetError('ERR_SERVICE_NOT_RUNNING', `no sdnet up is running for ${dataDir} (start it with sdnet up, or drop --no-start)`);
}

/** The registry of `dataDir` under its lock (no network), for `fn`. */
async function withRegistry<T>(dataDir: string, fn: (registry: DeviceRegistry) => Promise<T> | T): Promise<T> {
  await NetworkIdentity.load(dataDir);
  const lock = await DataDirLock.acquire(dataDir);
  try {
    const registry = await DeviceRegistry.open(dataDir);
    try {
      return await fn(registry);
    } finally {
      await registry.close();
    }
  } finally {
    await lock.release();
  }
}

/** The whole service in-process for `fn` (msg, request without a running `up`). */
export async function withService<T>(dataDir: string, relays: string[], fn: (service: NetworkingService) => Promise<T>): Promise<T> {
  await NetworkIdentity.load(dataDir);
  const service = await NetworkingService.create({ dataDir, relays, modules: cliModules() });
  try {
    await service.start();
    return await fn(service);
  } finally {
    await service.shutdown();
  }
}

// ------------------------------------------------------------------ sdnet init

export async function init(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('init', { args, options: { ...DATA, name: { type: 'string' } }, allowPositionals: false });
  const dataDir = resolveDataDir(values.data, io.env);
  let name: string | undefined;
  if (values.name !== undefined) {
    try {
      name = validateDeviceName(values.name);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const { identity, created } = await NetworkIdentity.init(dataDir, name !== undefined ? { name } : {});
  const out = { id: identity.endpointId.toString(), deviceId: identity.deviceId, name: identity.name, dataDir, created };
  if (values.json) io.stdout(`${JSON.stringify(out)}\n`);
  else {
    if (!created) io.stderr(`sdnet init: ${dataDir} already holds this device\n`);
    io.stdout(`id        ${out.id}\ndeviceId  ${out.deviceId}\nname      ${out.name}\n`);
  }
  return 0;
}

// ------------------------------------------------------------------ sdnet up

/** `--web` without an address (last, or before another flag) means 127.0.0.1 on a free port. */
function bareWeb(args: string[]): string[] {
  return args.map((a, i) => (a === '--web' && (i === args.length - 1 || args[i + 1]!.startsWith('-')) ? '--web=127.0.0.1:0' : a));
}

export async function up(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('up', {
    args: bareWeb(args),
    options: {
      ...DATA,
      bind: { type: 'string', multiple: true },
      relay: { type: 'string', multiple: true },
      downloads: { type: 'string' },
      name: { type: 'string' },
      verbose: { type: 'boolean', short: 'v' },
      'auto-accept-vouches': { type: 'boolean' },
      web: { type: 'string' },
      'refuse-transfers': { type: 'boolean' },
    },
    allowPositionals: false,
  });
  let web: WebServer | undefined;
  const dataDir = resolveDataDir(values.data, io.env);
  const json = values.json === true;
  const verbose = values.verbose === true || io.env.SDNET_LOG === 'debug';
  const lines: string[] = [];
  let ready = false;
  const emit = (plain: string, obj: Record<string, unknown>): void => {
    const line = json ? JSON.stringify(obj) : plain;
    web?.broadcast(obj);
    if (ready) io.stdout(`${line}\n`);
    else lines.push(line);
  };
  const log: LogSink = (e: LogEntry) => {
    if (!verbose && e.level !== 'warn' && e.level !== 'error') return;
    io.stderr(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
  };
  const service = await NetworkingService.create({
    dataDir,
    relays: resolveRelays(values.relay, io.env),
    ...(values.bind ? { bind: values.bind } : {}),
    ...(values.downloads !== undefined ? { downloadsDir: resolve(values.downloads) } : {}),
    ...(values.name !== undefined ? { name: values.name } : {}),
    modules: cliModules({ autoAcceptVouches: values['auto-accept-vouches'] === true, refuseTransfers: values['refuse-transfers'] === true }),
    log,
  });
  const label = (d: DeviceSnapshot): string => d.name ?? shortId(d.endpointId);
  const lastShown = new Map<string, string>();
  const showDevice = (d: DeviceSnapshot, state: string, reason?: string): void => {
    const path = state === 'connected' ? (d.connection?.path ?? null) : null;
    const key = `${state} ${path}`;
    if (lastShown.get(d.endpointId) === key) return;
    lastShown.set(d.endpointId, key);
    emit(`${label(d)} ${state}${path ? ` ${path}` : ''}${reason ? ` (${reason})` : ''}`, { event: 'device', id: d.endpointId, deviceId: d.deviceId ?? null, name: d.name ?? null, state, path, ...(reason ? { reason } : {}) });
  };
  // A device leaving the registry shows as "removed" with the event that removed it (unpair, expire, fail-pairing).
  service.on('device-state-changed', ({ device, to, event }) => (to === 'removed' ? showDevice(device, 'removed', event) : showDevice(device, to)));
  service.on('device-updated', ({ device }) => {
    if (device.state === 'connected') showDevice(device, 'connected');
  });
  service.on('message-received', ({ from, messageId, contentType, payload }) => {
    const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
    emit(`message from ${label(from)}: ${text}`, { event: 'message', from: from.endpointId, name: from.name ?? null, messageId, contentType, payload });
  });
  service.on('pairing-progress', (p) => emit(`pairing ${p.stage}${p.peer?.name ? ` ${p.peer.name}` : ''}${p.stage === 'vouch-requested' ? ` (sdnet pair accept ${p.sessionId})` : ''}${p.error ? `: ${p.error.message}` : ''}`, { event: 'pairing', ...p }));
  // Transfers: every phase, and progress once per 10 %.
  const shownDecile = new Map<string, number>();
  service.on('transfer-progress', (p) => {
    if (p.stage === 'transferring' || p.stage === 'chunk-rejected' || p.stage === 'file-done') {
      const decile = p.bytesTotal ? Math.floor(((p.bytesDone ?? 0) / p.bytesTotal) * 10) : 0;
      if (p.stage !== 'transferring' || shownDecile.get(p.transferId) === decile) return;
      shownDecile.set(p.transferId, decile);
    }
    const who = p.peer.name ?? shortId(p.peer.endpointId);
    const dir = p.direction === 'send' ? 'to' : 'from';
    const size = p.bytesTotal ? ` ${p.bytesDone ?? 0}/${p.bytesTotal} bytes` : '';
    emit(`transfer ${p.transferId.slice(0, 8)} ${dir} ${who} ${p.stage}${size}${p.error ? `: ${p.error.message}` : ''}`, { event: 'transfer', ...p });
  });
  service.on('online', ({ relay }) => ready && emit(`relay online ${relay}`, { event: 'relay', state: 'online', relay }));
  service.on('offline', ({ relay }) => emit(`relay offline ${relay ?? '-'}`, { event: 'relay', state: 'offline', relay: relay ?? null }));
  service.on('problem', (p) => io.stderr(`sdnet up: ${p.message}\n`));
  // Requests from paired devices: answered with who we are and what they sent (a diagnostic echo).
  service.onRequest(({ from, payload }) => ({ echo: payload, from: from.name ?? from.endpointId, device: { ...service.identity.info } as unknown as JsonValue }));

  let control;
  try {
    await service.start();
    control = await startControlServer(controlSocketPath(dataDir), (cmd, a) => execute(service, cmd, a));
  } catch (err) {
    await service.shutdown();
    throw err;
  }
  let relay: string | undefined;
  if (service.endpoint.homeRelay !== undefined || resolveRelays(values.relay, io.env).length > 0) {
    try {
      relay = (await service.endpoint.online({ signal: AbortSignal.any([io.signal, AbortSignal.timeout(ONLINE_WAIT_MS)]) })).toString();
    } catch {
      relay = undefined;
    }
  }
  const id = service.identity.endpointId.toString();
  const addr = service.addr();
  io.stdout(
    `${json ? JSON.stringify({ event: 'online', id, deviceId: service.identity.deviceId, name: service.identity.name, relay: relay ?? null, addr: { relayUrls: addr.relayUrls.map(String), directAddresses: addr.directAddresses.map(String) } }) : `online ${id} ${relay ?? '-'}`}\n`,
  );
  if (values.web !== undefined) {
    try {
      web = await startWebServer({
        addr: values.web,
        execute: (cmd, a) => execute(service, cmd, a),
        state: () => ({
          self: { id, deviceId: service.identity.deviceId, name: service.identity.name, relay: service.endpoint.homeRelay?.toString() ?? null },
          devices: service.devices().map(deviceRow),
          commands: ['devices', 'status', 'msg', 'request', 'unpair', ...CONTROL_COMMANDS.keys()],
        }),
      });
    } catch (err) {
      await control.close();
      await service.shutdown();
      throw err;
    }
    io.stdout(json ? `${JSON.stringify({ event: 'web', url: web.url })}\n` : `web ${web.url}\n`);
  }
  ready = true;
  for (const l of lines.splice(0)) io.stdout(`${l}\n`);
  if (!io.signal.aborted) await new Promise<void>((res) => io.signal.addEventListener('abort', () => res(), { once: true }));
  await web?.close();
  await control.close();
  await service.shutdown();
  return 0;
}

// ------------------------------------------------------------------ sdnet devices

export async function devices(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('devices', { args, options: DATA, allowPositionals: false });
  const dataDir = resolveDataDir(values.data, io.env);
  const rows = await viaService<DeviceRow[]>(dataDir, 'devices', {}, () => withRegistry(dataDir, (r) => r.devices().map(deviceRow)), values['no-start'] === true);
  if (values.json) {
    io.stdout(`${JSON.stringify(rows)}\n`);
    return 0;
  }
  if (rows.length === 0) {
    io.stdout('no devices\n');
    return 0;
  }
  const table = [['NAME', 'ID', 'STATE', 'PATH', 'RTT'], ...rows.map((d) => [d.name ?? '?', shortId(d.id), d.state, d.path ?? '-', d.rttMs !== null ? `${fmtMs(d.rttMs)} ms` : '-'])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) io.stdout(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
  return 0;
}

// ------------------------------------------------------------------ sdnet msg / request / unpair

function timeoutOf(v: string | undefined): number {
  if (v === undefined) return DEFAULT_TIMEOUT_MS;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError('--timeout takes a number of milliseconds');
  return n;
}

export async function msg(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('msg', { args, options: { ...DATA, relay: { type: 'string', multiple: true }, timeout: { type: 'string' } }, allowPositionals: true });
  if (positionals.length < 2) throw new UsageError('usage: sdnet msg <device> <text>');
  const dataDir = resolveDataDir(values.data, io.env);
  const cmdArgs = { device: positionals[0]!, text: positionals.slice(1).join(' '), timeoutMs: timeoutOf(values.timeout) };
  const r = await viaService<{ delivered: boolean; rttMs: number }>(
    dataDir,
    'msg',
    cmdArgs,
    () => withService(dataDir, resolveRelays(values.relay, io.env), (s) => execute(s, 'msg', cmdArgs) as Promise<{ delivered: boolean; rttMs: number }>),
    values['no-start'] === true,
  );
  io.stdout(values.json ? `${JSON.stringify({ delivered: true, rttMs: r.rttMs })}\n` : `delivered in ${fmtMs(r.rttMs)} ms\n`);
  return 0;
}

export async function request(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('request', { args, options: { ...DATA, relay: { type: 'string', multiple: true }, timeout: { type: 'string' } }, allowPositionals: true });
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError('usage: sdnet request <device> [JSON]');
  let payload: JsonValue = null;
  if (positionals[1] !== undefined) {
    try {
      payload = JSON.parse(positionals[1]) as JsonValue;
    } catch {
      throw new UsageError('the request body is not JSON');
    }
  }
  const dataDir = resolveDataDir(values.data, io.env);
  const cmdArgs = { device: positionals[0]!, payload, timeoutMs: timeoutOf(values.timeout) };
  const r = await viaService<{ response: JsonValue; rttMs: number }>(
    dataDir,
    'request',
    cmdArgs,
    () => withService(dataDir, resolveRelays(values.relay, io.env), (s) => execute(s, 'request', cmdArgs) as Promise<{ response: JsonValue; rttMs: number }>),
    values['no-start'] === true,
  );
  io.stdout(values.json ? `${JSON.stringify(r)}\n` : `${JSON.stringify(r.response)}\n`);
  if (!values.json) io.stderr(`answered in ${fmtMs(r.rttMs)} ms\n`);
  return 0;
}

export async function unpair(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('unpair', { args, options: DATA, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError('usage: sdnet unpair <device>');
  const dataDir = resolveDataDir(values.data, io.env);
  const device = positionals[0]!;
  const r = await viaService<{ id: string; name: string | null }>(dataDir, 'unpair', { device }, () =>
    withRegistry(dataDir, async (registry) => {
      const d = registry.resolve(device);
      if (!registry.isPaired(d.endpointId)) throw new SdnetError('ERR_DEVICE_UNKNOWN', `${d.name ?? shortId(d.endpointId)} is not paired`);
      registry.unpair(PublicKey.fromString(d.endpointId));
      await registry.flush();
      return { id: d.endpointId, name: d.name ?? null };
    }),
    values['no-start'] === true,
  );
  io.stdout(values.json ? `${JSON.stringify({ unpaired: true, ...r })}\n` : `unpaired ${r.name ?? shortId(r.id)} (${shortId(r.id)})\n`);
  return 0;
}
