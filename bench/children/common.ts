/**
 * Helpers shared by the child processes of `bench/quic.ts`.
 *
 * A child speaks to its parent in JSON lines on stdout: `{"ready":true,…}` when the parent
 * may start the other side, `{"result":true,…}` with the figures, `{"skipped":"…"}` when the
 * measurement cannot run, `{"error":"…"}` (and a non-zero exit) when it failed. Anything
 * else a child has to say goes to stderr.
 */

/** Write one JSON line on stdout (bigints become numbers). */
export function emit(line: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(line, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
}

/** Print the figures, then exit (native endpoints may otherwise keep the loop alive). */
export function finish(line: Record<string, unknown>): never {
  emit({ result: true, ...line });
  process.exit(0);
}

/** Report a failure and exit non-zero. */
export function fail(err: unknown): never {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  emit({ error: message });
  if (err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(1);
}

/** Run `main`, turning a throw or a rejection into an `error` line. */
export function runMain(main: () => Promise<void>): void {
  process.on('unhandledRejection', (e) => fail(e));
  main().catch(fail);
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The value below which a fraction `p` of `values` lie (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

export const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

/** Latency figures from samples in milliseconds. */
export function latencySummary(connectMs: readonly number[], echoMs: readonly number[]): Record<string, number> {
  return {
    n: connectMs.length,
    connectMs: round(median(connectMs)),
    connectMsP90: round(percentile(connectMs, 0.9)),
    connectMsMin: round(Math.min(...connectMs)),
    firstStreamEchoMs: round(median(echoMs)),
  };
}

/** CPU used by this process since `start`, as a percentage of one core over `seconds`. */
export function cpuPercent(start: NodeJS.CpuUsage, seconds: number): number {
  const used = process.cpuUsage(start);
  return Math.round((100 * (used.user + used.system)) / 1e6 / seconds);
}

/** Reject after `ms` with a message naming what did not finish. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Close things that may hang (native endpoints) without waiting longer than `ms`. */
export async function closeQuietly(close: () => Promise<unknown>, ms = 2000): Promise<void> {
  try {
    await withTimeout(close(), ms, 'close');
  } catch {
    // Best effort: the process exits right after.
  }
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
