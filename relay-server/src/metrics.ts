/**
 * A small Prometheus registry (text exposition format 0.0.4) for the relay's `/metrics`:
 * counters with optional labels, and gauges read at scrape time. No dependency; the format
 * is a few lines of text.
 *
 * @module
 */

type Labels = Readonly<Record<string, string>>;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelKey(labels: Labels | undefined): string {
  if (labels === undefined) return '';
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(',')}}`;
}

/** A monotonically increasing count, per label set. */
export class Counter {
  readonly name: string;
  readonly help: string;
  readonly #values = new Map<string, number>();
  /** The unlabelled value, kept apart for the hot path. */
  #plain = 0;

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  inc(amount = 1): void {
    this.#plain += amount;
  }

  incLabelled(labels: Labels, amount = 1): void {
    const key = labelKey(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + amount);
  }

  /** A handle for one label set, resolved once (for hot paths). */
  labelled(labels: Labels): { inc(amount?: number): void } {
    const key = labelKey(labels);
    if (!this.#values.has(key)) this.#values.set(key, 0);
    const values = this.#values;
    return { inc: (amount = 1) => void values.set(key, values.get(key)! + amount) };
  }

  /** The value for `labels` (or the unlabelled one). */
  get(labels?: Labels): number {
    return labels === undefined ? this.#plain : (this.#values.get(labelKey(labels)) ?? 0);
  }

  /** Sum over every label set. */
  total(): number {
    let sum = this.#plain;
    for (const v of this.#values.values()) sum += v;
    return sum;
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    if (this.#values.size === 0 || this.#plain !== 0) out += `${this.name} ${this.#plain}\n`;
    for (const [k, v] of this.#values) out += `${this.name}${k} ${v}\n`;
    return out;
  }
}

/** A value read when scraped. */
export class Gauge {
  readonly name: string;
  readonly help: string;
  readonly #read: () => number;

  constructor(name: string, help: string, read: () => number) {
    this.name = name;
    this.help = help;
    this.#read = read;
  }

  get(): number {
    return this.#read();
  }

  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${this.#read()}\n`;
  }
}

export class MetricsRegistry {
  readonly #metrics: Array<Counter | Gauge> = [];

  counter(name: string, help: string): Counter {
    const c = new Counter(name, help);
    this.#metrics.push(c);
    return c;
  }

  gauge(name: string, help: string, read: () => number): Gauge {
    const g = new Gauge(name, help, read);
    this.#metrics.push(g);
    return g;
  }

  /** The whole registry in Prometheus text format. */
  render(): string {
    return this.#metrics.map((m) => m.render()).join('');
  }
}

/** Parse Prometheus text into `name{labels}` → value (for tests and tools). */
export function parsePrometheusText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (i <= 0) continue;
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
