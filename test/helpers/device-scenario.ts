/**
 * The device layer's acceptance scenario, shared by the loopback and the network-namespace
 * runs: two `sdnet up` processes in separate data dirs, paired through the registry fixture.
 *
 * 1. A runs alone: `sdnet devices --json` shows B `paired`.
 * 2. B starts: both list the other `connected` (on the expected path).
 * 3. Messages both ways (`sdnet msg`, each lands as a `message` line at the other), a
 *    request/response (`sdnet request`, answered by the peer's `up`), RTT reported
 *    (`rttMs` in `devices --json` and in `msg --json`).
 * 4. `kill -9` B: A lists it `disconnected` within 10 s; B restarted: both `connected` again
 *    within 15 s — with no command but the `devices` polls that read the state.
 * 5. The same with A killed and restarted.
 *
 * The 10 s / 15 s are the acceptance bounds, used as the waits' deadlines; nothing finer is
 * asserted.
 */
import { expect } from 'vitest';
import type { UpProcess, RunResult } from './sdnet-proc.ts';

export interface Side {
  name: string;
  id: string;
  dataDir: string;
  start: () => UpProcess;
}

export interface ScenarioEnv {
  a: Side;
  b: Side;
  /** Run an sdnet command (in the side's namespace when there is one). */
  run: (side: Side, args: string[]) => Promise<RunResult>;
  /** The path both should report once connected. */
  path: 'direct' | 'relay';
  /** Extra context for a failure (process output, relay logs). */
  explain?: () => Promise<string>;
}

type Row = { id: string; name: string; state: string; path: string | null; rttMs: number | null };

async function devices(env: ScenarioEnv, side: Side): Promise<Row[]> {
  const r = await env.run(side, ['devices', '--json', '--data', side.dataDir]);
  if (r.code !== 0) throw new Error(`sdnet devices (${side.name}) failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Row[];
}

/** Poll `side`'s `devices --json` until its row for `peer` satisfies `ok`; `deadlineMs` is the bound. */
async function until(env: ScenarioEnv, side: Side, peer: Side, ok: (row: Row | undefined) => boolean, deadlineMs: number, what: string): Promise<Row | undefined> {
  const end = performance.now() + deadlineMs;
  let last: Row[] | undefined;
  for (;;) {
    try {
      last = await devices(env, side);
      const row = last.find((d) => d.id === peer.id);
      if (ok(row)) return row;
    } catch (err) {
      if (performance.now() > end) throw err;
    }
    if (performance.now() > end) {
      const extra = env.explain ? await env.explain() : '';
      throw new Error(`${what}: not within ${deadlineMs} ms; ${side.name} lists ${JSON.stringify(last)}\n${extra}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

const kill9 = async (p: UpProcess): Promise<void> => {
  p.child.kill('SIGKILL');
  await p.exited;
};

export async function deviceScenario(env: ScenarioEnv): Promise<void> {
  const { a, b } = env;
  let upA = a.start();
  await upA.out.waitText(/^online /, 20_000, `${a.name} online`);
  expect((await devices(env, a)).map((d) => [d.id, d.state])).toEqual([[b.id, 'paired']]);

  let upB = b.start();
  await upB.out.waitText(/^online /, 20_000, `${b.name} online`);
  const connected = (row: Row | undefined): boolean => row?.state === 'connected';
  await until(env, a, b, connected, 15_000, `${a.name} lists ${b.name} connected`);
  await until(env, b, a, connected, 15_000, `${b.name} lists ${a.name} connected`);

  // Messages both ways; a request answered by the peer's `up`.
  const ab = await env.run(a, ['msg', '--json', '--data', a.dataDir, b.name, `hello ${b.name}`]);
  expect(ab.code, ab.stderr).toBe(0);
  expect(JSON.parse(ab.stdout)).toMatchObject({ delivered: true, rttMs: expect.any(Number) });
  await upB.out.waitText(new RegExp(`^message from ${a.name}: hello ${b.name}$`), 10_000, `the message at ${b.name}`);
  const ba = await env.run(b, ['msg', '--data', b.dataDir, a.id.slice(0, 12), `hello ${a.name}`]);
  expect(ba.code, ba.stderr).toBe(0);
  expect(ba.stdout).toMatch(/^delivered in [\d.]+ ms\n$/);
  await upA.out.waitText(new RegExp(`^message from ${b.name}: hello ${a.name}$`), 10_000, `the message at ${a.name}`);
  const req = await env.run(a, ['request', '--json', '--data', a.dataDir, b.name, '{"n":7}']);
  expect(req.code, req.stderr).toBe(0);
  expect(JSON.parse(req.stdout)).toMatchObject({ response: { echo: { n: 7 }, from: a.name, device: { name: b.name } }, rttMs: expect.any(Number) });
  // RTT and path, as the health check reports them.
  const rowA = await until(env, a, b, (r) => connected(r) && typeof r?.rttMs === 'number', 15_000, `${a.name} reports an RTT`);
  const rowB = await until(env, b, a, (r) => connected(r) && typeof r?.rttMs === 'number', 15_000, `${b.name} reports an RTT`);
  expect(rowA!.path).toBe(env.path);
  expect(rowB!.path).toBe(env.path);

  // kill -9 of B, then its restart.
  await kill9(upB);
  await until(env, a, b, (r) => r?.state === 'disconnected', 10_000, `${a.name} lists ${b.name} disconnected after kill -9`);
  upB = b.start();
  await until(env, a, b, connected, 15_000, `${a.name} lists ${b.name} connected after its restart`);
  await until(env, b, a, connected, 15_000, `${b.name} lists ${a.name} connected after its restart`);

  // kill -9 of A, then its restart.
  await kill9(upA);
  await until(env, b, a, (r) => r?.state === 'disconnected', 10_000, `${b.name} lists ${a.name} disconnected after kill -9`);
  upA = a.start();
  await until(env, b, a, connected, 15_000, `${b.name} lists ${a.name} connected after its restart`);
  await until(env, a, b, connected, 15_000, `${a.name} lists ${b.name} connected after its restart`);
  const again = await env.run(b, ['msg', '--data', b.dataDir, a.name, 'still here']);
  expect(again.code, again.stderr).toBe(0);
  await upA.out.waitText(new RegExp(`^message from ${b.name}: still here$`), 10_000, 'the message after the restarts');

  upA.child.kill('SIGTERM');
  upB.child.kill('SIGTERM');
  expect(await upA.exited).toBe(0);
  expect(await upB.exited).toBe(0);
}
