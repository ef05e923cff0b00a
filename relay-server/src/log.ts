/**
 * Structured logs: one JSON object per line (`time`, `level`, `msg`, then fields), so a log
 * pipeline can extract events without parsing prose (iroh's "events are data" rule,
 * aesthetics.md §2.3).
 *
 * @module
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Anything with a `write(string)`: a stream, or a test's collector. */
export interface LineSink {
  write(line: string): unknown;
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message, ...('code' in value ? { code: (value as { code: unknown }).code } : {}) };
  return value;
}

/** A JSON-lines logger writing entries at or above `level` to `sink`. */
export function jsonLogger(level: LogLevel, sink: LineSink): Logger {
  const min = ORDER[level];
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < min) return;
    let line: string;
    try {
      line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }, replacer);
    } catch {
      line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, fields: 'unserialisable' });
    }
    sink.write(`${line}\n`);
  };
  return {
    level,
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = jsonLogger('silent', { write: () => undefined });
