/**
 * Structured logging for the device layer: plain objects handed to a sink the application
 * chooses (the CLI prints them as JSON lines on stderr; tests collect them). Nothing is
 * printed by default. Callers never pass secrets (keys, link keys, codes).
 *
 * @module
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogEntry {
  readonly level: LogLevel;
  readonly component: string;
  readonly message: string;
  readonly [field: string]: unknown;
}

export type LogSink = (entry: LogEntry) => void;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export class Logger {
  readonly #sink: LogSink | undefined;
  readonly #component: string;
  readonly #min: number;

  constructor(sink: LogSink | undefined, component: string, minLevel: LogLevel = 'debug') {
    this.#sink = sink;
    this.#component = component;
    this.#min = RANK[minLevel];
  }

  /** A logger for a sub-component (`service:loop`). */
  child(component: string): Logger {
    return new Logger(this.#sink, `${this.#component}:${component}`, (Object.keys(RANK) as LogLevel[])[this.#min]);
  }

  #log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (this.#sink === undefined || RANK[level] < this.#min) return;
    try {
      this.#sink({ ...fields, level, component: this.#component, message });
    } catch {
      // A failing sink must not break the caller.
    }
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    this.#log('debug', message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.#log('info', message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.#log('warn', message, fields);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.#log('error', message, fields);
  }
}

/** A logger that drops everything. */
export const silentLogger = new Logger(undefined, 'sdnet');
