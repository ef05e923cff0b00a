/**
 * QUIC benchmark (issue 6): sdnet's QUIC next to the anchors it is judged against, all
 * measured in this run, on this machine, under this Node.
 *
 * - floor: the bare encrypt + header-protect + send data path of perf-anchors.md §3.6, two
 *   processes over loopback, through sdnet's own crypto provider (1452-byte datagrams; 1200
 *   for reference). No ACKs, congestion control or streams: a real QUIC stays below it.
 * - iroh ↔ iroh through `@number0/iroh` (§3.3): bulk over one bi stream, warm connect.
 * - native quinn through `@chainsafe/libp2p-quic` (§3.4), for context: bulk, warm connect.
 * - ts ↔ ts (two processes for bulk), ts ↔ ts and ts → iroh warm connect, through
 *   `src/endpoint`; reported as skipped until that module exists.
 * - summary: the ratios the issue sets targets for (bulk ≥ 0.8 × floor, ≥ 10 × iroh from
 *   JS; connect ≤ 1.0 × iroh's). Reported, never asserted.
 *
 * Every measurement runs in child processes (`bench/children/`) under a deadline; a hung or
 * failed one prints an `error` line and the run goes on. Results are JSON lines on stdout.
 *
 * Environment (defaults in brackets; SDNET_BENCH_QUICK=1 picks small ones):
 *   SDNET_BENCH_RUNS [3]           runs per measurement (the median is reported)
 *   SDNET_BENCH_MB [256]           MiB of TS ↔ TS bulk
 *   SDNET_BENCH_CHUNK [65536]      TS ↔ TS write size
 *   SDNET_BENCH_FLOOR_SECS [3]     seconds per floor run
 *   SDNET_BENCH_IROH_MB [12]       MiB of iroh ↔ iroh bulk (it moves ~8 MB/s)
 *   SDNET_BENCH_QUINN_MB [256]     MiB of quinn bulk
 *   SDNET_BENCH_CONNECTS [30]      timed connects per run (after the warm-up connects)
 *   SDNET_BENCH_WARMUP [3]         warm-up connects per run (300 or so: JIT-warm figures)
 *   SDNET_BENCH_TS_TIMEOUT_S [120] deadline of one TS ↔ TS bulk run
 *   SDNET_BENCH_ONLY               regular expression: run only measurements whose name matches
 *   SDNET_BENCH_CPU_PROF           directory: run the TS children with --cpu-prof into it
 *   SDNET_BENCH_ENDPOINT           another module to take Endpoint from (tests this benchmark)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BENCH = 'quic';
const childrenDir = fileURLToPath(new URL('children/', import.meta.url));

// ---------------------------------------------------------------------------------------
// Configuration

const quick = process.env.SDNET_BENCH_QUICK === '1';
function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${raw}`);
  return value;
}
const MiB = 1 << 20;
const config = {
  runs: Math.round(envNumber('SDNET_BENCH_RUNS', quick ? 1 : 3)),
  tsBytes: Math.round(envNumber('SDNET_BENCH_MB', quick ? 32 : 256) * MiB),
  tsChunk: Math.round(envNumber('SDNET_BENCH_CHUNK', 65536)),
  floorSeconds: envNumber('SDNET_BENCH_FLOOR_SECS', quick ? 1 : 3),
  irohBytes: Math.round(envNumber('SDNET_BENCH_IROH_MB', quick ? 4 : 12) * MiB),
  quinnBytes: Math.round(envNumber('SDNET_BENCH_QUINN_MB', quick ? 64 : 256) * MiB),
  connects: Math.round(envNumber('SDNET_BENCH_CONNECTS', quick ? 10 : 30)),
  warmup: Math.round(envNumber('SDNET_BENCH_WARMUP', 3)),
  tsTimeoutMs: envNumber('SDNET_BENCH_TS_TIMEOUT_S', 120) * 1000,
};
const only = process.env.SDNET_BENCH_ONLY ? new RegExp(process.env.SDNET_BENCH_ONLY) : undefined;
const profDir = process.env.SDNET_BENCH_CPU_PROF;
const tsNodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];

const wanted = (name: string): boolean => only === undefined || only.test(name);
const mibLabel = (bytes: number): string => (bytes >= MiB ? `${+(bytes / MiB).toFixed(2)}MiB` : `${bytes / 1024}KiB`);

// ---------------------------------------------------------------------------------------
// Output

type Line = Record<string, unknown>;
let failures = 0;

function print(name: string, fields: Line): void {
  console.log(JSON.stringify({ bench: BENCH, name, ...fields }));
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
const round = (x: number, digits = 3): number => Number(x.toFixed(digits));
const num = (line: Line, key: string): number => {
  const v = line[key];
  if (typeof v !== 'number') throw new Error(`child result has no number ${key}: ${JSON.stringify(line)}`);
  return v;
};

// ---------------------------------------------------------------------------------------
// Child processes

/**
 * Two-process measurements (floor, TS ↔ TS bulk) pin the receiver to CPU 0 and the sender to
 * CPU 1 when `taskset` exists and there are two CPUs, so both see the same placement run
 * after run instead of whatever the scheduler picks.
 */
const TASKSET = availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const RX_CPU = 0;
const TX_CPU = 1;

/** A measurement that cannot run here (e.g. the module under test does not exist yet). */
class Skipped extends Error {}

const live = new Set<Child>();

class Child {
  readonly label: string;
  readonly #proc: ChildProcess;
  readonly #lines: Line[] = [];
  #stderr = '';
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  #wake: (() => void)[] = [];

  constructor(script: string, args: readonly string[], nodeArgs: readonly string[] = [], cpu?: number) {
    this.label = [script, ...args.map((a) => (a.length > 40 ? `${a.slice(0, 12)}…` : a))].join(' ');
    const argv = [...nodeArgs, `${childrenDir}${script}`, ...args];
    this.#proc = cpu !== undefined && TASKSET ? spawn('taskset', ['-c', String(cpu), process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this);
    createInterface({ input: this.#proc.stdout! }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        line = { text };
      }
      this.#lines.push(line);
      this.#notify();
    });
    this.#proc.stderr!.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-2000);
    });
    this.#proc.on('exit', (code, signal) => {
      live.delete(this);
      this.#exit = { code, signal };
      // Let readline deliver the last lines first.
      setImmediate(() => this.#notify());
    });
    this.#proc.on('error', (e) => {
      this.#stderr += String(e);
      this.#exit ??= { code: null, signal: null };
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#wake.push(resolve));
  }

  /** Throws what the child reported: skipped, error, or a silent death. */
  #check(): void {
    const skipped = this.#lines.find((l) => typeof l.skipped === 'string');
    if (skipped) throw new Skipped(skipped.skipped as string);
    const error = this.#lines.find((l) => 'error' in l);
    if (error) throw new Error(`${this.label}: ${String(error.error)}`);
  }

  #died(): Error {
    const tail = this.#stderr.trim().split('\n').slice(-3).join(' | ');
    const how = this.#exit?.signal ? `signal ${this.#exit.signal}` : `status ${this.#exit?.code}`;
    return new Error(`${this.label} exited with ${how} without a result${tail ? `: ${tail}` : ''}`);
  }

  /** The first line with `key` set (e.g. `ready`, `result`). */
  async line(key: string): Promise<Line> {
    for (;;) {
      this.#check();
      const found = this.#lines.find((l) => key in l);
      if (found) return found;
      if (this.#exit) throw this.#died();
      await this.#changed();
    }
  }

  result(): Promise<Line> {
    return this.line('result');
  }

  /** The child's last `progress` line, if any. */
  progress(): string | undefined {
    const last = this.#lines.findLast((l) => typeof l.progress === 'string');
    return last ? `${this.label}: ${String(last.progress)}` : undefined;
  }

  /** Wait up to `ms` for the child to exit on its own (it prints its result, then exits). */
  async exited(ms: number): Promise<void> {
    const end = performance.now() + ms;
    while (this.#exit === undefined && performance.now() < end) {
      const tick = new Promise<void>((resolve) => setTimeout(resolve, 20));
      await Promise.race([this.#changed(), tick]);
    }
  }

  kill(): void {
    if (this.#exit === undefined && this.#proc.exitCode === null && this.#proc.signalCode === null) this.#proc.kill('SIGKILL');
  }
}

function killAll(): void {
  for (const c of live) c.kill();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

type Spawn = (script: string, args: readonly string[], nodeArgs?: readonly string[], cpu?: number) => Child;
type Outcome<T> = { values: T[]; skipped?: string; error?: string };

/**
 * Run `body` up to `runs` times, each under `timeoutMs`; stop at the first skip or failure.
 * Children spawned by a run are killed when it ends, however it ends.
 */
async function repeat<T>(runs: number, timeoutMs: number, body: (spawn: Spawn) => Promise<T>): Promise<Outcome<T>> {
  const outcome: Outcome<T> = { values: [] };
  for (let r = 0; r < runs; r++) {
    const once = await attempt(timeoutMs, body);
    if ('value' in once) outcome.values.push(once.value);
    else return { ...outcome, ...once };
  }
  return outcome;
}

async function attempt<T>(timeoutMs: number, body: (spawn: Spawn) => Promise<T>): Promise<{ value: T } | { skipped: string } | { error: string }> {
  const children: Child[] = [];
  const spawnChild: Spawn = (script, args, nodeArgs, cpu) => {
    const c = new Child(script, args, nodeArgs, cpu);
    children.push(c);
    return c;
  };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    const value = await Promise.race([body(spawnChild), deadline]);
    // Let finished children exit by themselves (a --cpu-prof profile is written at exit).
    await Promise.all(children.map((c) => c.exited(profDir ? 10_000 : 2000)));
    return { value };
  } catch (e) {
    if (e instanceof Skipped) return { skipped: e.message };
    const progress = children.map((c) => c.progress()).filter((p) => p !== undefined);
    const message = e instanceof Error ? e.message : String(e);
    return { error: progress.length > 0 ? `${message} (last progress: ${progress.join('; ')})` : message };
  } finally {
    clearTimeout(timer);
    for (const c of children) c.kill();
  }
}

/** Print a failed or skipped outcome; true if there is nothing else to print. */
function reportProblem(name: string, outcome: Outcome<unknown>): boolean {
  if (outcome.skipped !== undefined) {
    print(name, { skipped: outcome.skipped });
    return true;
  }
  if (outcome.error !== undefined) {
    failures++;
    print(name, { error: outcome.error, completedRuns: outcome.values.length });
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Measurements

interface FloorRun {
  goodputMBps: number;
  rxKpps: number;
  txKpps: number;
  lossPct: number;
  bad: number;
}

function floorRun(size: number): (spawn: Spawn) => Promise<FloorRun> {
  return async (spawn) => {
    const rx = spawn('quic-floor.ts', ['recv', String(config.floorSeconds + 10)], [], RX_CPU);
    const { port } = await rx.line('ready');
    const tx = spawn('quic-floor.ts', ['send', String(port), String(size), String(config.floorSeconds)], [], TX_CPU);
    // Both at once, so whichever side fails first is reported at once.
    const [sent, got] = await Promise.all([tx.result(), rx.result()]);
    return {
      goodputMBps: num(got, 'goodputMBps'),
      rxKpps: num(got, 'rxKpps'),
      txKpps: num(sent, 'txKpps'),
      lossPct: round(100 * (1 - num(got, 'rxPackets') / num(sent, 'txPackets')), 1),
      bad: num(got, 'bad'),
    };
  };
}

function reportFloor(name: string, size: number, outcome: Outcome<FloorRun>): number | undefined {
  if (reportProblem(name, outcome)) return undefined;
  const v = outcome.values;
  const goodputMBps = median(v.map((r) => r.goodputMBps));
  print(name, {
    what: 'AES-128-GCM seal (nodeCryptoProvider.aead) + AES header protection (pre-expanded key) + connected dgram send, 2 processes, no ACKs/CC',
    datagramBytes: size,
    goodputMBps,
    rxKpps: median(v.map((r) => r.rxKpps)),
    txKpps: median(v.map((r) => r.txKpps)),
    lossPct: median(v.map((r) => r.lossPct)),
    bad: v.reduce((a, r) => a + r.bad, 0),
    runsMBps: v.map((r) => r.goodputMBps),
  });
  return goodputMBps;
}

interface BulkRun {
  MBps: number;
  cpuPct: number;
  receiverMBps?: number;
  receiverCpuPct?: number;
  stats?: unknown;
}

function tsBulkRun(): (spawn: Spawn) => Promise<BulkRun> {
  return async (spawn) => {
    const rx = spawn('quic-ts.ts', ['bulk-recv'], tsNodeArgs, RX_CPU);
    const { ticket } = await rx.line('ready');
    const tx = spawn('quic-ts.ts', ['bulk-send', String(ticket), String(config.tsBytes), String(config.tsChunk)], tsNodeArgs, TX_CPU);
    const [sent, got] = await Promise.all([tx.result(), rx.result()]);
    return {
      MBps: num(sent, 'MBps'),
      cpuPct: num(sent, 'processCpuPct'),
      receiverMBps: num(got, 'MBps'),
      receiverCpuPct: num(got, 'processCpuPct'),
      stats: { sender: sent.stats, receiver: got.stats },
    };
  };
}

function inProcessBulkRun(script: string, chunk: number, total: number): (spawn: Spawn) => Promise<BulkRun> {
  return async (spawn) => {
    const r = await spawn(script, ['bulk', String(chunk), String(total)]).result();
    return { MBps: num(r, 'MBps'), cpuPct: num(r, 'processCpuPct') };
  };
}

function reportBulk(name: string, fields: Line, outcome: Outcome<BulkRun>): number | undefined {
  if (reportProblem(name, outcome)) return undefined;
  const v = outcome.values;
  const MBps = median(v.map((r) => r.MBps));
  const line: Line = { ...fields, MBps, cpuPct: median(v.map((r) => r.cpuPct)), runsMBps: v.map((r) => r.MBps) };
  if (v[0]?.receiverMBps !== undefined) {
    line.receiverMBps = median(v.map((r) => r.receiverMBps!));
    line.receiverCpuPct = median(v.map((r) => r.receiverCpuPct!));
  }
  const stats = v.at(-1)?.stats;
  if (stats !== undefined) line.lastRunStats = stats;
  print(name, line);
  return MBps;
}

interface ConnectRun {
  connectMs: number;
  connectMsP90: number;
  connectMsMin: number;
  firstStreamEchoMs: number;
}

function connectRun(script: string, mode: string, nodeArgs: readonly string[] = []): (spawn: Spawn) => Promise<ConnectRun> {
  return async (spawn) => {
    const r = await spawn(script, [mode, String(config.connects), String(config.warmup)], nodeArgs).result();
    return { connectMs: num(r, 'connectMs'), connectMsP90: num(r, 'connectMsP90'), connectMsMin: num(r, 'connectMsMin'), firstStreamEchoMs: num(r, 'firstStreamEchoMs') };
  };
}

/** TS client → TS server in two processes: the server's work runs beside the client's. */
function tsTwoProcessConnectRun(): (spawn: Spawn) => Promise<ConnectRun> {
  return async (spawn) => {
    const server = spawn('quic-ts.ts', ['echo-serve'], tsNodeArgs, RX_CPU);
    const { ticket } = await server.line('ready');
    const r = await spawn('quic-ts.ts', ['connect-ticket', String(ticket), String(config.connects), String(config.warmup)], tsNodeArgs, TX_CPU).result();
    server.kill();
    return { connectMs: num(r, 'connectMs'), connectMsP90: num(r, 'connectMsP90'), connectMsMin: num(r, 'connectMsMin'), firstStreamEchoMs: num(r, 'firstStreamEchoMs') };
  };
}

function reportConnect(name: string, fields: Line, outcome: Outcome<ConnectRun>): number | undefined {
  if (reportProblem(name, outcome)) return undefined;
  const v = outcome.values;
  const connectMs = median(v.map((r) => r.connectMs));
  print(name, {
    ...fields,
    connectMs,
    connectMsP90: median(v.map((r) => r.connectMsP90)),
    connectMsMin: Math.min(...v.map((r) => r.connectMsMin)),
    firstStreamEchoMs: median(v.map((r) => r.firstStreamEchoMs)),
    connectsPerRun: config.connects,
    runsConnectMs: v.map((r) => r.connectMs),
  });
  return connectMs;
}

// ---------------------------------------------------------------------------------------
// The run

const CONNECT_TIMEOUT_MS = 60_000;
const results: Record<string, number | undefined> = {};

const names = {
  floor: 'floor 1452B',
  floor1200: 'floor 1200B',
  tsBulk: `ts↔ts bulk ${mibLabel(config.tsBytes)}`,
  irohBulk1M: 'iroh↔iroh bulk 1MiB chunks',
  irohBulk64K: 'iroh↔iroh bulk 64KiB chunks',
  quinnBulk1M: 'quinn bulk 1MiB chunks',
  quinnBulk64K: 'quinn bulk 64KiB chunks',
  irohConnect: 'iroh↔iroh connect',
  quinnConnect: 'quinn connect',
  tsConnect: 'ts↔ts connect',
  tsIrohConnect: 'ts→iroh connect',
  tsRemoteConnect: 'ts↔ts connect, two processes',
};

function merge<T>(into: Outcome<T>, add: Outcome<T>): Outcome<T> {
  return { values: [...into.values, ...add.values], skipped: add.skipped ?? into.skipped, error: add.error ?? into.error };
}

// Floor and TS ↔ TS bulk alternate run by run, so both see the same noise on this shared VM.
{
  let floor: Outcome<FloorRun> = { values: [] };
  let ts: Outcome<BulkRun> = { values: [] };
  for (let r = 0; r < config.runs; r++) {
    if (wanted(names.floor) && floor.error === undefined) {
      floor = merge(floor, await repeat(1, (config.floorSeconds + 20) * 1000, floorRun(1452)));
    }
    if (wanted(names.tsBulk) && ts.error === undefined && ts.skipped === undefined) {
      ts = merge(ts, await repeat(1, config.tsTimeoutMs, tsBulkRun()));
    }
  }
  if (wanted(names.floor)) results.floor = reportFloor(names.floor, 1452, floor);
  if (wanted(names.tsBulk)) {
    const what = 'sdnet Endpoint: a client writes one bi stream to a server in another process; timed from the first write to the receiver’s byte count';
    results.tsBulk = reportBulk(names.tsBulk, { what, bytes: config.tsBytes, chunk: config.tsChunk }, ts);
  }
}

if (wanted(names.floor1200)) {
  results.floor1200 = reportFloor(names.floor1200, 1200, await repeat(config.runs, (config.floorSeconds + 20) * 1000, floorRun(1200)));
}

const irohBulkTimeout = 30_000 + (config.irohBytes / 1e6) * 1000; // at 1 MB/s, plus setup
for (const [key, chunk] of [['irohBulk1M', MiB], ['irohBulk64K', 65536]] as const) {
  if (!wanted(names[key])) continue;
  results[key] = reportBulk(
    names[key],
    { what: '@number0/iroh, two endpoints in one process, one bi stream, prebuilt Array<number> chunks', bytes: config.irohBytes, chunk },
    await repeat(config.runs, irohBulkTimeout, inProcessBulkRun('quic-iroh.ts', chunk, config.irohBytes)),
  );
}

for (const [key, chunk] of [['quinnBulk1M', MiB], ['quinnBulk64K', 65536]] as const) {
  if (!wanted(names[key])) continue;
  results[key] = reportBulk(
    names[key],
    { what: '@chainsafe/libp2p-quic napi (native quinn, GSO), client and server in one process, one stream, Uint8Array chunks', bytes: config.quinnBytes, chunk },
    await repeat(config.runs, 60_000, inProcessBulkRun('quic-quinn.ts', chunk, config.quinnBytes)),
  );
}

const connectWhat = (who: string): string => `${who}; warm: ${config.warmup} warm-up connects, then new connections between the same two bound endpoints in one process; + 1-byte echo on the first bi stream`;
results.irohConnect = wanted(names.irohConnect)
  ? reportConnect(names.irohConnect, { what: connectWhat('@number0/iroh client → @number0/iroh server') }, await repeat(config.runs, CONNECT_TIMEOUT_MS, connectRun('quic-iroh.ts', 'connect')))
  : undefined;
results.quinnConnect = wanted(names.quinnConnect)
  ? reportConnect(names.quinnConnect, { what: connectWhat('@chainsafe/libp2p-quic client → server') }, await repeat(config.runs, CONNECT_TIMEOUT_MS, connectRun('quic-quinn.ts', 'connect')))
  : undefined;
results.tsConnect = wanted(names.tsConnect)
  ? reportConnect(names.tsConnect, { what: connectWhat('sdnet client → sdnet server') }, await repeat(config.runs, CONNECT_TIMEOUT_MS, connectRun('quic-ts.ts', 'connect', tsNodeArgs)))
  : undefined;
results.tsIrohConnect = wanted(names.tsIrohConnect)
  ? reportConnect(names.tsIrohConnect, { what: connectWhat('sdnet client → @number0/iroh server') }, await repeat(config.runs, CONNECT_TIMEOUT_MS, connectRun('quic-ts.ts', 'connect-iroh', tsNodeArgs)))
  : undefined;

results.tsRemoteConnect = wanted(names.tsRemoteConnect)
  ? reportConnect(
      names.tsRemoteConnect,
      { what: `sdnet client → sdnet server in another process (each on its own core, as iroh's runtime uses both); warm: ${config.warmup} warm-up connects, then new connections between the same two bound endpoints; + 1-byte echo on the first bi stream` },
      await repeat(config.runs, CONNECT_TIMEOUT_MS, tsTwoProcessConnectRun()),
    )
  : undefined;

// ---------------------------------------------------------------------------------------
// Summary

const ratio = (a: number | undefined, b: number | undefined, digits = 2): number | null =>
  a === undefined || b === undefined || b === 0 ? null : round(a / b, digits);
const meets = (value: number | null, ok: (v: number) => boolean): boolean | null => (value === null ? null : ok(value));

const irohBulkBest = [results.irohBulk1M, results.irohBulk64K].filter((x) => x !== undefined).reduce<number | undefined>((a, b) => (a === undefined ? b : Math.max(a, b)), undefined);
const quinnBulkBest = [results.quinnBulk1M, results.quinnBulk64K].filter((x) => x !== undefined).reduce<number | undefined>((a, b) => (a === undefined ? b : Math.max(a, b)), undefined);
const bulkOverFloor = ratio(results.tsBulk, results.floor);
const bulkOverIroh = ratio(results.tsBulk, irohBulkBest, 1);
const connectOverIroh = ratio(results.tsConnect, results.irohConnect);
print('summary', {
  node: process.version,
  floorMBps: results.floor ?? null,
  tsBulkMBps: results.tsBulk ?? null,
  irohBulkMBps: irohBulkBest ?? null,
  quinnBulkMBps: quinnBulkBest ?? null,
  tsConnectMs: results.tsConnect ?? null,
  tsIrohConnectMs: results.tsIrohConnect ?? null,
  tsRemoteConnectMs: results.tsRemoteConnect ?? null,
  irohConnectMs: results.irohConnect ?? null,
  quinnConnectMs: results.quinnConnect ?? null,
  'tsBulk/floor': bulkOverFloor,
  'tsBulk/irohBulk': bulkOverIroh,
  'tsConnect/irohConnect': connectOverIroh,
  'tsIrohConnect/irohConnect': ratio(results.tsIrohConnect, results.irohConnect),
  'tsRemoteConnect/irohConnect': ratio(results.tsRemoteConnect, results.irohConnect),
  'tsBulk/quinnBulk': ratio(results.tsBulk, quinnBulkBest),
  'tsConnect/quinnConnect': ratio(results.tsConnect, results.quinnConnect),
  'floor/quinnBulk': ratio(results.floor, quinnBulkBest),
  targets: {
    'tsBulk/floor >= 0.8': meets(bulkOverFloor, (v) => v >= 0.8),
    'tsBulk/irohBulk >= 10': meets(bulkOverIroh, (v) => v >= 10),
    'tsConnect/irohConnect <= 1.0': meets(connectOverIroh, (v) => v <= 1.0),
  },
});

process.exitCode = failures > 0 ? 1 : 0;
