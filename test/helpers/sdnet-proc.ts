/**
 * Running `bin/sdnet.js` as a process, the way a user does: one-shot commands (`runSdnet`,
 * resolves with exit code and output) and long-running `sdnet up` (`startUp`, its stdout
 * lines collected from the start). Children are killed after each test by `killAll`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { JsonLines, killAndWait } from './netns.ts';

export const SDNET_BIN = fileURLToPath(new URL('../../bin/sdnet.js', import.meta.url));

const live = new Set<ChildProcess>();

/** Kill every child still running (SIGKILL). */
export async function killAll(): Promise<void> {
  await killAndWait(live);
  live.clear();
}

/**
 * An environment without the caller's sdnet settings. mDNS is off (`SDNET_MDNS=0`) unless a
 * test turns it on: test processes on one host would otherwise discover each other.
 */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['SDNET_HOME', 'SDNET_RELAY', 'XDG_DATA_HOME', 'IROH_SECRET', 'SDNET_LOG', 'SDNET_MDNS_PORT']) delete env[k];
  env.SDNET_MDNS = '0';
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface RunResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Run `sdnet args…` to completion (killed after `timeoutMs`). `prefix` runs it inside e.g. `ip netns exec`. */
export function runSdnet(args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; prefix?: readonly string[] } = {}): Promise<RunResult> {
  const argv = [...(options.prefix ?? []), process.execPath, SDNET_BIN, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code: code ?? signal ?? -1, stdout, stderr });
    }),
  );
}

export interface UpProcess {
  child: ChildProcess;
  out: JsonLines;
  /** Exit status once it exits. */
  exited: Promise<number | string>;
}

/** Start `sdnet up args…` (long-running); its stdout lines are collected from the start. */
export function startUp(args: readonly string[], options: { env?: NodeJS.ProcessEnv; prefix?: readonly string[]; spawnWith?: (argv: string[]) => ChildProcess } = {}): UpProcess {
  return startSdnet(['up', ...args], options);
}

/** Start any long-running `sdnet args…` (`pair invite`); stdout lines collected from the start. */
export function startSdnet(args: readonly string[], options: { env?: NodeJS.ProcessEnv; prefix?: readonly string[]; spawnWith?: (argv: string[]) => ChildProcess } = {}): UpProcess {
  const argv = [...(options.prefix ?? []), process.execPath, SDNET_BIN, ...args];
  const child = options.spawnWith ? options.spawnWith(argv) : spawn(argv[0]!, argv.slice(1), { env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const out = new JsonLines(child);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? -1);
    }),
  );
  return { child, out, exited };
}

/** A UDP port free on 127.0.0.1 right now. */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `sdnet devices --json` of a data dir, as objects. */
export async function devicesJson(dataDir: string, options: { env?: NodeJS.ProcessEnv; prefix?: readonly string[] } = {}): Promise<Array<{ id: string; name: string; state: string; path: string | null; rttMs: number | null; lastSeen: string | null; deviceId: string }>> {
  const r = await runSdnet(['devices', '--json', '--data', dataDir], options);
  if (r.code !== 0) throw new Error(`sdnet devices failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Awaited<ReturnType<typeof devicesJson>>;
}

/** Poll `check` until it returns a value (not undefined), or fail after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 200): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
