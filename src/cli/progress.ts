/**
 * A progress display for long CLI operations (file transfer, the tour's file step): on a
 * terminal a bar redrawn in place with rate and ETA, otherwise one line per 10 % (what
 * shared/docs/cli.md asks of `sdnet send`). The clock is injected so tests are exact.
 *
 * @module
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `bytes` in binary units, 1 decimal from KiB on. */
export function formatBytes(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** Seconds as `1h02m`, `3m05s` or `42s`; `--` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

export interface ProgressOptions {
  /** Total bytes. */
  total: number;
  /** Where text goes (stdout or stderr). */
  write: (text: string) => void;
  /** Redraw in place (a terminal) rather than printing milestones. */
  tty: boolean;
  /** A label before the bar. */
  label?: string;
  /** Milliseconds now (default performance.now). */
  now?: () => number;
  /** Bar width in cells. */
  width?: number;
}

export class Progress {
  readonly #o: Required<Omit<ProgressOptions, 'label'>> & { label: string };
  readonly #start: number;
  #lastDraw = -Infinity;
  #lastTenth = 0;
  #done = 0;
  /** Recent (time, bytes) samples for the rate: the last few seconds, not the whole run. */
  #samples: [number, number][] = [];

  constructor(options: ProgressOptions) {
    this.#o = { now: () => performance.now(), width: 30, label: '', ...options };
    this.#start = this.#o.now();
    this.#samples.push([this.#start, 0]);
  }

  /** Bytes per second over the last ~5 s. */
  rate(): number {
    const [t0, b0] = this.#samples[0]!;
    const [t1, b1] = this.#samples[this.#samples.length - 1]!;
    return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
  }

  /** The line for `done` bytes (without a newline or carriage return). */
  line(): string {
    const total = this.#o.total;
    const fraction = total > 0 ? Math.min(1, this.#done / total) : 1;
    const rate = this.rate();
    const eta = rate > 0 ? (total - this.#done) / rate : Infinity;
    const filled = Math.round(fraction * this.#o.width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(this.#o.width - filled)}]`;
    const pct = `${(fraction * 100).toFixed(0).padStart(3)} %`;
    const tail = this.#done >= total ? `in ${formatDuration((this.#o.now() - this.#start) / 1000)}` : `ETA ${formatDuration(eta)}`;
    return `${this.#o.label}${bar} ${pct}  ${formatBytes(this.#done)} / ${formatBytes(total)}  ${formatBytes(Math.round(rate))}/s  ${tail}`;
  }

  /** `done` bytes are through. */
  update(done: number): void {
    const now = this.#o.now();
    this.#done = done;
    this.#samples.push([now, done]);
    while (this.#samples.length > 2 && now - this.#samples[0]![0] > 5000) this.#samples.shift();
    const finished = done >= this.#o.total;
    if (this.#o.tty) {
      if (!finished && now - this.#lastDraw < 100) return;
      this.#lastDraw = now;
      this.#o.write(`\r${this.line()}\x1b[K${finished ? '\n' : ''}`);
      return;
    }
    const tenth = this.#o.total > 0 ? Math.floor((Math.min(done, this.#o.total) / this.#o.total) * 10) : 10;
    if (tenth > this.#lastTenth) {
      this.#lastTenth = tenth;
      this.#o.write(`${this.line()}\n`);
    }
  }
}
