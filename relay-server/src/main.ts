/**
 * The `sdnet-relay` command: flags and config file → {@link startRelayServer}. Prints the
 * relay URL on stdout once it accepts connections; logs JSON lines on stderr; shuts down
 * gracefully when `signal` aborts (SIGINT/SIGTERM in `bin/sdnet-relay.js`).
 *
 * Exit status: 0 after a clean shutdown, 2 for bad usage or a bad config file (exactly one
 * line on stderr, whatever the parser's message looked like), 1 when the server cannot start
 * (port in use, unreadable certificate, …).
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { ConfigError, parseCli, USAGE } from './config.ts';
import { jsonLogger, type LineSink } from './log.ts';
import { startRelayServer } from './server.ts';
import { RELAY_SERVER_VERSION } from './version.ts';

export interface MainIo {
  stdout: LineSink;
  stderr: LineSink;
  /** Aborting it shuts the relay down. */
  signal: AbortSignal;
}

export async function main(argv: readonly string[], io: MainIo): Promise<number> {
  let cfg;
  try {
    cfg = parseCli(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      // One line, so a service manager's log shows the whole reason in one entry.
      io.stderr.write(`sdnet-relay: ${err.message.replace(/\s*\n\s*/g, ' ')} (see sdnet-relay --help)\n`);
      return 2;
    }
    throw err;
  }
  if (cfg.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (cfg.version) {
    io.stdout.write(`sdnet-relay ${RELAY_SERVER_VERSION}\n`);
    return 0;
  }
  const log = jsonLogger(cfg.logLevel, io.stderr);
  if (cfg.tlsFiles !== undefined) {
    try {
      cfg.options.tls = { cert: readFileSync(cfg.tlsFiles.cert), key: readFileSync(cfg.tlsFiles.key) };
    } catch (err) {
      io.stderr.write(`sdnet-relay: cannot read TLS certificate or key: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let relay;
  try {
    relay = await startRelayServer({ ...cfg.options, logger: log });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    log.error('cannot start relay', { err: e });
    io.stderr.write(`sdnet-relay: cannot start: ${String(e.message).replace(/\s*\n\s*/g, ' ')}\n`);
    return e instanceof TypeError || e instanceof RangeError ? 2 : 1;
  }
  io.stdout.write(`${relay.url}\n`);
  if (!io.signal.aborted) await new Promise<void>((resolve) => io.signal.addEventListener('abort', () => resolve(), { once: true }));
  await relay.close({ graceful: true });
  return 0;
}
