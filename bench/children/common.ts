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

/** The dial → direct figures of the hole-punching children: median, range and every run. */
export function fromDialSummary(fromDialMs: readonly number[]): Record<string, number | number[] | null> {
  const any = fromDialMs.length > 0;
  return {
    fromDialMs: any ? round(median(fromDialMs)) : null,
    fromDialMsMin: any ? round(Math.min(...fromDialMs)) : null,
    fromDialMsMax: any ? round(Math.max(...fromDialMs)) : null,
    fromDialRunsMs: fromDialMs.map((v) => round(v, 1)),
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

/** Read until at least `n` bytes arrived (or the stream ended); returns them. */
export async function readAtLeast(reader: ReadableStreamDefaultReader<Uint8Array>, n: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let have = 0;
  while (have < n) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    have += value.byteLength;
  }
  const out = new Uint8Array(have);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** A bidirectional stream as the web-streams endpoints give it. */
export interface WebBiStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}

/** Calls `progress(bytes)` each time `bytes` crosses a multiple of `every`. */
function milestones(every: number, progress: ((bytes: number) => void) | undefined): (before: number, after: number) => void {
  return (before, after) => {
    if (progress !== undefined && Math.floor(after / every) !== Math.floor(before / every)) progress(after);
  };
}

/**
 * Receiving half of a counted bulk transfer: read the stream to its end (timed from the first
 * byte), then answer the byte count as 8 bytes and FIN.
 */
export async function receiveCounted(bi: WebBiStream, onProgress?: (bytes: number) => void, every = 16 << 20): Promise<{ bytes: number; seconds: number; processCpuPct: number }> {
  const reader = bi.readable.getReader();
  const mark = milestones(every, onProgress);
  let bytes = 0;
  let first = 0;
  let cpu = process.cpuUsage();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (bytes === 0) {
      first = performance.now();
      cpu = process.cpuUsage();
    }
    mark(bytes, bytes + value.byteLength);
    bytes += value.byteLength;
  }
  const seconds = (performance.now() - first) / 1000;
  const processCpuPct = cpuPercent(cpu, seconds);
  const writer = bi.writable.getWriter();
  const count = new Uint8Array(8);
  new DataView(count.buffer).setBigUint64(0, BigInt(bytes));
  await writer.write(count);
  // The sender closes the connection as soon as it has the count, possibly before our FIN's
  // acknowledgment gets back: that is not a failure here.
  await writer.close().catch(() => undefined);
  return { bytes, seconds, processCpuPct };
}

/**
 * Sending half: write `total` bytes in `chunk`-sized writes with backpressure, FIN, and wait
 * for the receiver's count (which must equal `total`). Timed from the first write.
 */
export async function sendCounted(bi: WebBiStream, total: number, chunk: number, onProgress?: (bytes: number) => void, every = 16 << 20): Promise<{ seconds: number; processCpuPct: number }> {
  const data = new Uint8Array(chunk).fill(0x61);
  const mark = milestones(every, onProgress);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const writer = bi.writable.getWriter();
  for (let written = 0; written < total; ) {
    await writer.ready; // backpressure
    const n = Math.min(chunk, total - written);
    // Errors surface through writer.ready / writer.close().
    writer.write(n === chunk ? data : data.subarray(0, n)).catch(() => undefined);
    mark(written, written + n);
    written += n;
  }
  await writer.close();
  const answer = await readAtLeast(bi.readable.getReader(), 8);
  const seconds = (performance.now() - t0) / 1000;
  if (answer.byteLength < 8) throw new Error(`receiver answered ${answer.byteLength} bytes, not a count`);
  const received = Number(new DataView(answer.buffer, answer.byteOffset, 8).getBigUint64(0));
  if (received !== total) throw new Error(`receiver got ${received} bytes, sent ${total}`);
  return { seconds, processCpuPct: cpuPercent(cpu, seconds) };
}
