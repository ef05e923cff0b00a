/**
 * Paths benchmark (issue "Endpoint paths"): TS ↔ TS throughput and warm connect latency
 * through the relay next to the same over direct UDP, in one run, and the time a connection
 * that starts on the relay takes to move to the direct path. JSON lines on stdout.
 *
 * The relay (sdnet's, rate limit off) runs in its own process; bulk runs use two more
 * processes (receiver, sender), so the relayed figure includes the relay's own CPU on this
 * 2-core machine. Relay and direct bulk runs alternate so both see the same noise; medians of
 * `SDNET_BENCH_RUNS` runs are reported, and the summary gives relay / direct ratios.
 *
 * Environment: SDNET_BENCH_RUNS [3], SDNET_BENCH_PATHS_MB [64], SDNET_BENCH_CONNECTS [30],
 * SDNET_BENCH_UPGRADES [10], SDNET_BENCH_QUICK=1 (small values).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BENCH = 'paths';
const child = fileURLToPath(new URL('children/paths-ts.ts', import.meta.url));
const quick = process.env.SDNET_BENCH_QUICK === '1';
const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? '');
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const MiB = 1 << 20;
const config = {
  runs: Math.round(num('SDNET_BENCH_RUNS', quick ? 1 : 3)),
  bytes: Math.round(num('SDNET_BENCH_PATHS_MB', quick ? 16 : 64) * MiB),
  chunk: 65536,
  connects: Math.round(num('SDNET_BENCH_CONNECTS', quick ? 10 : 30)),
  upgrades: Math.round(num('SDNET_BENCH_UPGRADES', quick ? 3 : 10)),
};

type Line = Record<string, unknown>;
const print = (name: string, fields: Line): void => console.log(JSON.stringify({ bench: BENCH, name, ...fields }));
const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 3): number => Number(x.toFixed(d));

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A child process and its JSON lines. */
function start(args: string[]): { next: (key: string, timeoutMs: number) => Promise<Line>; kill: () => void } {
  const proc = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  const lines: Line[] = [];
  let wake: (() => void) | undefined;
  let stderr = '';
  let exited = false;
  createInterface({ input: proc.stdout! }).on('line', (t) => {
    try {
      lines.push(JSON.parse(t) as Line);
    } catch {
      lines.push({ text: t });
    }
    wake?.();
  });
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  proc.on('exit', () => {
    live.delete(proc);
    exited = true;
    setImmediate(() => wake?.());
  });
  return {
    async next(key, timeoutMs) {
      const end = performance.now() + timeoutMs;
      for (;;) {
        const err = lines.find((l) => 'error' in l);
        if (err) throw new Error(`${args[0]}: ${String(err.error)}`);
        const found = lines.find((l) => key in l);
        if (found) return found;
        if (exited) throw new Error(`${args[0]} exited without ${key}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
        if (performance.now() > end) throw new Error(`${args[0]}: no ${key} within ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
    kill: () => {
      if (!exited) proc.kill('SIGKILL');
    },
  };
}

async function bulk(mode: 'direct' | 'relay', relayUrl: string): Promise<{ MBps: number; cpuPct: number; receiverCpuPct: number; relayed: boolean }> {
  const rx = start(['bulk-recv', mode, relayUrl]);
  try {
    const { ticket } = await rx.next('ready', 20_000);
    const tx = start(['bulk-send', String(ticket), String(config.bytes), String(config.chunk), mode]);
    try {
      const [sent, got] = await Promise.all([tx.next('result', 180_000), rx.next('result', 180_000)]);
      if (sent.relayed !== (mode === 'relay')) throw new Error(`the ${mode} run ended on the ${sent.relayed ? 'relay' : 'direct'} path`);
      return { MBps: sent.MBps as number, cpuPct: sent.processCpuPct as number, receiverCpuPct: got.processCpuPct as number, relayed: sent.relayed as boolean };
    } finally {
      tx.kill();
    }
  } finally {
    rx.kill();
  }
}

let failed = false;
async function measure<T>(name: string, body: () => Promise<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (err) {
    failed = true;
    print(name, { error: err instanceof Error ? err.message : String(err) });
    return undefined;
  }
}

const relayProc = start(['relay']);
try {
  const { url } = await relayProc.next('ready', 20_000);
  const relayUrl = String(url);

  const direct: Awaited<ReturnType<typeof bulk>>[] = [];
  const relayed: Awaited<ReturnType<typeof bulk>>[] = [];
  for (let r = 0; r < config.runs; r++) {
    const d = await measure('direct bulk', () => bulk('direct', relayUrl));
    if (d) direct.push(d);
    const x = await measure('relay bulk', () => bulk('relay', relayUrl));
    if (x) relayed.push(x);
  }
  const directMBps = direct.length ? median(direct.map((v) => v.MBps)) : undefined;
  const relayMBps = relayed.length ? median(relayed.map((v) => v.MBps)) : undefined;
  const label = `${config.bytes / MiB}MiB`;
  if (direct.length) print(`ts↔ts direct bulk ${label}`, { MBps: directMBps, senderCpuPct: median(direct.map((v) => v.cpuPct)), receiverCpuPct: median(direct.map((v) => v.receiverCpuPct)), runsMBps: direct.map((v) => v.MBps) });
  if (relayed.length) print(`ts↔ts relay bulk ${label}`, { MBps: relayMBps, senderCpuPct: median(relayed.map((v) => v.cpuPct)), receiverCpuPct: median(relayed.map((v) => v.receiverCpuPct)), runsMBps: relayed.map((v) => v.MBps), note: 'three processes (sender, relay, receiver) on 2 cores' });

  const connects: Record<string, number | undefined> = {};
  for (const mode of ['direct', 'relay'] as const) {
    const r = await measure(`${mode} connect`, async () => {
      const c = start(['connect', mode, relayUrl, String(config.connects), '3']);
      try {
        return await c.next('result', 120_000);
      } finally {
        c.kill();
      }
    });
    if (r) {
      connects[mode] = r.connectMs as number;
      print(`ts↔ts ${mode} connect`, { connectMs: r.connectMs, connectMsP90: r.connectMsP90, connectMsMin: r.connectMsMin, firstStreamEchoMs: r.firstStreamEchoMs, n: r.n });
    }
  }

  const up = await measure('relay→direct switch', async () => {
    const c = start(['upgrade', relayUrl, String(config.upgrades)]);
    try {
      return await c.next('result', 120_000);
    } finally {
      c.kill();
    }
  });
  if (up) print('relay→direct switch', { what: 'from the connection established on the relay to its move to a validated direct path', switchMs: up.switchMs, switchMsP90: up.switchMsP90, switchMsMax: up.switchMsMax, fromDialMs: up.fromDialMs, n: up.n });

  print('summary', {
    relayOverDirectBulk: directMBps && relayMBps ? round(relayMBps / directMBps) : null,
    relayOverDirectConnect: connects.direct && connects.relay ? round(connects.relay / connects.direct, 2) : null,
    switchMs: up?.switchMs ?? null,
  });
} finally {
  relayProc.kill();
}
process.exitCode = failed ? 1 : 0;
