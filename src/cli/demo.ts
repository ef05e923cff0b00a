/**
 * `sdnet demo` (what `npm start` runs): the product's tour. An embedded sdnet relay (the same
 * server as `sdnet-relay`), two devices as separate `sdnet up` processes with their own data
 * dirs under a temp dir, pairing with the real 12-word code through `sdnet pair invite` /
 * `sdnet pair join`, a message with `sdnet msg`, the path each step used (relay or direct),
 * and cleanup. Every step runs the same command a user types on two machines, and the tour
 * prints it.
 *
 * The steps are a list ({@link TourStep}); file transfer adds its step to that list.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRelayServer } from '../../relay-server/src/index.ts';
import { parseCommandArgs } from './help.ts';
import { UsageError, type CliIo } from './io.ts';

const MiB = 1024 * 1024;
/** Deadline of one step (ms): generous, a loaded machine starts node slowly. */
const STEP_TIMEOUT_MS = 45_000;

/** bin/sdnet.js, from dist/src/cli (installed) or src/cli (tests run the source). */
function sdnetBin(): string {
  const fromDist = import.meta.url.includes('/dist/src/cli/');
  return fileURLToPath(new URL(fromDist ? '../../../bin/sdnet.js' : '../../bin/sdnet.js', import.meta.url));
}

/** A long-running `sdnet …` child whose stdout lines are JSON events. */
class Child {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number>;
  #waiters: (() => void)[] = [];

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.proc = spawn(process.execPath, [sdnetBin(), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => {
        resolve(code ?? (signal ? 128 : 1));
        for (const w of this.#waiters.splice(0)) w();
      }),
    );
  }

  /** The first JSON line (from `from` on) that `match` accepts. */
  async waitJson<T = Record<string, unknown>>(match: (o: Record<string, unknown>) => boolean, what: string, signal: AbortSignal, from = 0): Promise<T> {
    const deadline = performance.now() + STEP_TIMEOUT_MS;
    for (let i = from; ; ) {
      for (; i < this.lines.length; i++) {
        let o: unknown;
        try {
          o = JSON.parse(this.lines[i]!);
        } catch {
          continue;
        }
        if (typeof o === 'object' && o !== null && match(o as Record<string, unknown>)) return o as T;
      }
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`${what}: the process ended (${this.stderr.trim().split('\n').pop() ?? 'no message'})`);
      if (signal.aborted) throw new Error('interrupted');
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${what}: nothing after ${STEP_TIMEOUT_MS / 1000} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 500));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async stop(): Promise<number> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 20_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Run `sdnet args…` to its end. */
async function runOnce(args: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = new Child(args, env);
  const onAbort = (): void => void c.proc.kill('SIGTERM');
  signal.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => c.proc.kill('SIGKILL'), STEP_TIMEOUT_MS * 2);
  try {
    const code = await c.exited;
    return { code, stdout: c.lines.join('\n'), stderr: c.stderr };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

/** One device of the tour: its name, data dir and running `sdnet up`. */
export interface TourDevice {
  name: string;
  dataDir: string;
  up: Child;
  id: string;
}

/** What each step can use. */
export interface TourContext {
  dir: string;
  relay: string;
  alice: TourDevice;
  bob: TourDevice;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** Size of the demo file (bytes), for the transfer step. */
  fileSize: number;
  /** Narrate: the command a user would type, then what happened. */
  command(device: TourDevice, args: string): void;
  say(line?: string): void;
  /** Run `sdnet …` on a device's data dir (JSON output), one clear error when it fails. */
  sdnet(device: TourDevice, args: string[]): Promise<string>;
  /** The path (direct/relay) `from` has to `to` right now, from `sdnet devices --json`. */
  pathBetween(from: TourDevice, to: TourDevice): Promise<string>;
  /** Record a step's result for --json. */
  record(result: Record<string, unknown>): void;
}

export interface TourStep {
  title: string;
  run(ctx: TourContext): Promise<void>;
}

const pairStep: TourStep = {
  title: 'Pair them with a 12-word code',
  async run(ctx) {
    const { alice, bob } = ctx;
    ctx.command(alice, 'sdnet pair invite');
    const invite = new Child(['pair', 'invite', '--json', '--data', alice.dataDir], ctx.env);
    try {
      const { code } = await invite.waitJson<{ code: string }>((o) => typeof o.code === 'string', 'pair invite', ctx.signal);
      ctx.say(`   alice shows the code: ${code}`);
      ctx.command(bob, `sdnet pair join ${code}`);
      const joined = JSON.parse(await ctx.sdnet(bob, ['pair', 'join', ...code.split(' ')])) as { paired: { name: string; id: string } };
      const invited = await invite.waitJson<{ paired: { name: string; id: string } }>((o) => typeof o.paired === 'object', 'pair invite', ctx.signal);
      ctx.say(`   bob: paired with ${joined.paired.name} (${joined.paired.id.slice(0, 10)}); alice: paired with ${invited.paired.name} (${invited.paired.id.slice(0, 10)})`);
      ctx.record({ step: 'pair', alice: invited.paired, bob: joined.paired });
    } finally {
      await invite.stop();
    }
    const path = await ctx.pathBetween(bob, alice);
    ctx.say(`   both services now show each other as connected, via ${path === 'relay' ? 'the relay' : 'a direct UDP path'}.`);
  },
};

const messageStep: TourStep = {
  title: 'Send a message',
  async run(ctx) {
    const { alice, bob } = ctx;
    const from = alice.up.lines.length;
    ctx.command(bob, 'sdnet msg alice "hello from bob"');
    const r = JSON.parse(await ctx.sdnet(bob, ['msg', 'alice', 'hello from bob'])) as { delivered: boolean; rttMs: number };
    const m = await alice.up.waitJson<{ payload: string; name: string }>((o) => o.event === 'message', 'the message at alice', ctx.signal, from);
    const path = await ctx.pathBetween(bob, alice);
    ctx.say(`   alice's sdnet up prints: message from ${m.name}: ${m.payload}`);
    ctx.say(`   bob: delivered and acknowledged in ${r.rttMs.toFixed(1)} ms, via ${path}.`);
    ctx.record({ step: 'message', delivered: r.delivered, rttMs: r.rttMs, path, received: m.payload });
  },
};

const devicesStep: TourStep = {
  title: 'List the devices',
  async run(ctx) {
    for (const [dev, other] of [
      [ctx.alice, ctx.bob],
      [ctx.bob, ctx.alice],
    ] as const) {
      ctx.command(dev, 'sdnet devices');
      const rows = JSON.parse(await ctx.sdnet(dev, ['devices'])) as { name: string; id: string; state: string; path: string | null; rttMs: number | null }[];
      for (const d of rows) ctx.say(`   ${dev.name} knows ${d.name} (${d.id.slice(0, 10)}): ${d.state}, path ${d.path ?? '-'}, rtt ${d.rttMs !== null ? `${d.rttMs.toFixed(1)} ms` : '-'}`);
      const row = rows.find((d) => d.id === other.id);
      if (row === undefined) throw new Error(`${dev.name} does not list ${other.name}`);
      ctx.record({ step: 'devices', device: dev.name, devices: rows });
    }
  },
};

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const fileStep: TourStep = {
  title: 'Send a file',
  async run(ctx) {
    const { alice, bob } = ctx;
    const name = 'tour-file.bin';
    const file = join(ctx.dir, name);
    const fh = await open(file, 'w');
    try {
      for (let left = ctx.fileSize; left > 0; left -= 1024 * 1024) await fh.write(randomBytes(Math.min(left, 1024 * 1024)));
    } finally {
      await fh.close();
    }
    const sent = await sha256File(file);
    ctx.command(alice, `sdnet send bob ${name}`);
    // Encrypted per chunk under the link key only these two hold, each chunk checked before it is written.
    const send = new Child(['send', 'bob', file, '--json', '--no-start', '--data', alice.dataDir], ctx.env);
    let shown = 0;
    const show = (): void => {
      for (; shown < send.lines.length; shown++) {
        let o: { event?: string; stage?: string; bytes?: number; total?: number; rate?: number | null; etaMs?: number | null };
        try {
          o = JSON.parse(send.lines[shown]!) as typeof o;
        } catch {
          continue;
        }
        if (o.event !== 'progress' || !o.total) continue;
        const pct = Math.floor(((o.bytes ?? 0) / o.total) * 100);
        const bar = `${'#'.repeat(Math.round(pct / 5))}${'.'.repeat(20 - Math.round(pct / 5))}`;
        const rate = o.rate ? ` ${(o.rate / MiB).toFixed(1)} MiB/s` : '';
        const eta = o.etaMs !== null && o.etaMs !== undefined && pct < 100 ? ` ETA ${Math.ceil(o.etaMs / 1000)} s` : '';
        ctx.say(`   [${bar}] ${String(pct).padStart(3)}% ${o.stage ?? ''}${rate}${eta}`);
      }
    };
    const ticker = setInterval(show, 100);
    let code: number;
    try {
      code = await send.exited;
    } finally {
      clearInterval(ticker);
    }
    show();
    if (code !== 0) throw new Error(send.stderr.trim().split('\n')[0] || `sdnet send exited with ${code}`);
    const done = send.lines.map((l) => (l.startsWith('{') ? (JSON.parse(l) as { event?: string; files?: number; bytes?: number }) : {})).find((o) => o.event === 'done');
    const received = await sha256File(join(bob.dataDir, 'downloads', name));
    if (received !== sent) throw new Error(`the file bob received differs (sha256 ${received.slice(0, 16)}… against ${sent.slice(0, 16)}…)`);
    const path = await ctx.pathBetween(alice, bob);
    ctx.say(`   alice: sent ${done?.files ?? 1} file, ${done?.bytes ?? ctx.fileSize} bytes, verified by bob, via ${path}.`);
    ctx.say(`   bob has it in its downloads; SHA-256 ${sent.slice(0, 16)}… on both sides.`);
    ctx.record({ step: 'file', bytes: ctx.fileSize, sha256: sent, received, path });
  },
};

/** The tour after the devices are up. */
export const TOUR_STEPS: TourStep[] = [pairStep, messageStep, fileStep, devicesStep];

export async function demo(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('demo', {
    args,
    options: { size: { type: 'string' }, keep: { type: 'boolean' }, relay: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: false,
  });
  const sizeMiB = values.size === undefined ? 32 : Number(values.size);
  if (!Number.isFinite(sizeMiB) || sizeMiB <= 0 || sizeMiB > 4096) throw new UsageError('--size is a number of MiB between 0 and 4096');
  if (values.relay !== undefined && !/^https?:\/\//.test(values.relay)) throw new UsageError(`--relay takes an http:// or https:// URL, not "${values.relay.slice(0, 200)}"`);
  const json = values.json === true;
  const say = (line = ''): void => {
    if (!json) io.stdout(`${line}\n`);
  };
  const record = (o: Record<string, unknown>): void => {
    if (json) io.stdout(`${JSON.stringify(o)}\n`);
  };
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'sdnet-demo-'));
  const cleanups: (() => Promise<unknown>)[] = [];
  const env: NodeJS.ProcessEnv = { ...io.env };
  for (const k of ['SDNET_HOME', 'SDNET_RELAY', 'XDG_DATA_HOME', 'SDNET_LOG']) delete env[k];
  let ok = false;
  let current = '';
  try {
    say('sdnet tour — two devices on this machine, each its own process and data dir, pair with');
    say('a 12-word code through a relay and talk. Every step is the command you would type on');
    say('two real machines (shown after "$").');
    say();

    current = 'start the relay';
    let relay = values.relay;
    if (relay === undefined) {
      const server = await startRelayServer({ host: '127.0.0.1', port: 0, rateLimit: false });
      cleanups.push(() => server.close({ graceful: false }));
      relay = server.url;
      say(`1. A relay starts on ${relay} (the same server as \`sdnet-relay\`; on real machines: \`npx sdnet-relay\`).`);
    } else say(`1. Using the relay ${relay}.`);
    record({ step: 'relay', url: relay, embedded: values.relay === undefined });
    say();

    current = 'create the devices';
    say('2. Two devices, each with its own data dir:');
    const devices: TourDevice[] = [];
    for (const name of ['alice', 'bob']) {
      const dataDir = join(dir, name);
      say(`   $ sdnet init --name ${name} --data ${dataDir}`);
      const r = await runOnce(['init', '--json', '--name', name, '--data', dataDir], env, io.signal);
      if (r.code !== 0) throw new Error(`sdnet init: ${r.stderr.trim() || `exit ${r.code}`}`);
      const id = (JSON.parse(r.stdout) as { id: string }).id;
      devices.push({ name, dataDir, id, up: undefined as unknown as Child });
      say(`   ${name}: ${id}`);
    }
    say();

    current = 'start the services';
    say('3. Each device runs its service (in the background here; in a terminal of its own on two machines):');
    for (const d of devices) {
      say(`   [${d.name}] $ sdnet up --relay ${relay}`);
      d.up = new Child(['up', '--json', '--data', d.dataDir, '--relay', relay, '--bind', '127.0.0.1:0'], env);
      const up = d.up;
      cleanups.push(async () => {
        const code = await up.stop();
        if (code !== 0 && !io.signal.aborted) say(`   (${d.name}'s sdnet up exited with ${code})`);
      });
    }
    for (const d of devices) {
      const online = await d.up.waitJson<{ relay: string | null }>((o) => o.event === 'online', `${d.name}'s sdnet up`, io.signal);
      say(`   ${d.name} is online, home relay ${online.relay ?? '- (none reachable yet)'}`);
      record({ step: 'up', device: d.name, id: d.id, relay: online.relay });
    }
    say();

    const [alice, bob] = devices as [TourDevice, TourDevice];
    const sdnet = async (device: TourDevice, a: string[]): Promise<string> => {
      const r = await runOnce([...a, '--json', '--no-start', '--data', device.dataDir], env, io.signal);
      if (r.code !== 0) throw new Error(r.stderr.trim().split('\n')[0] || `sdnet ${a[0]} exited with ${r.code}`);
      return r.stdout;
    };
    const ctx: TourContext = {
      dir,
      relay,
      alice,
      bob,
      env,
      signal: io.signal,
      fileSize: Math.round(sizeMiB * MiB),
      say,
      record,
      command: (device, text) => say(`   [${device.name}] $ ${text}`),
      sdnet,
      async pathBetween(from, to) {
        const deadline = performance.now() + STEP_TIMEOUT_MS;
        for (;;) {
          const rows = JSON.parse(await sdnet(from, ['devices'])) as { id: string; state: string; path: string | null }[];
          const row = rows.find((r) => r.id === to.id);
          if (row?.state === 'connected' && row.path !== null) return row.path;
          if (performance.now() > deadline) throw new Error(`${from.name} never connected to ${to.name} (state ${row?.state ?? 'unknown'})`);
          await new Promise((r) => setTimeout(r, 250));
        }
      },
    };
    let n = 4;
    for (const step of TOUR_STEPS) {
      current = step.title.toLowerCase();
      say(`${n++}. ${step.title}:`);
      await step.run(ctx);
      say();
    }

    current = 'clean up';
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    say(`${n}. Done in ${seconds} s. The services stop, the relay closes${values.keep ? `; the data dirs stay in ${dir}` : ', the temp data dirs are removed'}.`);
    say('   Next: the same commands on two machines — see "A 5-minute tour on two machines" in README.md.');
    ok = true;
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    io.stderr(`sdnet demo: ${current}: ${message}\n`);
    record({ step: 'failed', at: current, error: message });
    return 1;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    if (values.keep) {
      if (ok) record({ step: 'done', dataDirs: dir });
    } else {
      await rm(dir, { recursive: true, force: true });
      if (ok) record({ step: 'done' });
    }
  }
}
