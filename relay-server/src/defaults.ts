/**
 * Defaults of the deployable relay server that are neither limits (those are in
 * `./limits.ts`) nor protocol constants (`src/relay/protocol/limits.ts`): where it listens and
 * how its timers run. Each is overridable by flag, config file or option.
 *
 * @module
 */

/** Default listen address: loopback, so a relay started by hand is not exposed by accident. */
export const DEFAULT_HOST = '127.0.0.1';
/** Default port: iroh-relay's development port (its production ports are 80/443). */
export const DEFAULT_PORT = 3340;
/**
 * Default address of the Prometheus listener: loopback whatever `--host` says, because the
 * metrics tell anyone who can read them how many clients the relay has and from where.
 */
export const DEFAULT_METRICS_HOST = '127.0.0.1';
/** Default Prometheus port, as iroh-relay (`defaults.rs`). */
export const DEFAULT_METRICS_PORT = 9090;

/** How often timers (handshake deadlines, pings, write timeouts) are checked. */
export const DEFAULT_TICK_MS = 250;

/** Graceful shutdown: what `Restarting` advises, and how long closes may take. */
export const DEFAULT_RESTART_RECONNECT_IN_MS = 1_000;
export const DEFAULT_RESTART_TRY_FOR_MS = 5_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 2_000;

/** QUIC address discovery UDP port on the command line (iroh's `RelayConfig.quic.port` default). */
export { DEFAULT_QAD_PORT } from '../../src/endpoint/qad.ts';
