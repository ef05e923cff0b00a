/**
 * Defaults of the deployable relay server that are not protocol constants (those live in
 * `src/relay/protocol/limits.ts`). Each is overridable by flag, config file or option.
 *
 * @module
 */

/** Default listen address: loopback, so a relay started by hand is not exposed by accident. */
export const DEFAULT_HOST = '127.0.0.1';
/** Default port: iroh-relay's development port (its production ports are 80/443). */
export const DEFAULT_PORT = 3340;
/** Default Prometheus port, as iroh-relay (`defaults.rs`). */
export const DEFAULT_METRICS_PORT = 9090;

/**
 * Most relay connections (upgraded, handshaking or authenticated) at once. Each idle client
 * costs a socket and some kilobytes (see `npm run bench relay`); 10,000 fits a small VM.
 */
export const DEFAULT_MAX_CLIENTS = 10_000;

/**
 * Extra TCP connections allowed above {@link DEFAULT_MAX_CLIENTS} for plain HTTP (latency
 * probes on `/ping`, health checks), so a full relay still answers them.
 */
export const HTTP_CONNECTION_SLACK = 256;

/**
 * Concurrent connections per source IP; 0 = unlimited. Off by default because a relay behind
 * a TLS-terminating proxy sees every client with the proxy's address (reliability.md §4
 * suggests 16 for a relay that faces clients directly).
 */
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 0;

/** Largest HTTP request head (request line + headers). iroh's upgrade request is ~250 bytes. */
export const MAX_HEADER_BYTES = 8 * 1024;

/**
 * Per-client receive rate (bytes/s) and burst, on by default as reliability.md §4 advises;
 * the burst is at least one maximal frame (1 MiB) as iroh's source comment says it must be.
 */
export const DEFAULT_RATE_LIMIT_BYTES_PER_SECOND = 2 * 1024 * 1024;
export const DEFAULT_RATE_LIMIT_BURST_BYTES = 2 * 1024 * 1024;

/** How often timers (handshake deadlines, pings, write timeouts) are checked. */
export const DEFAULT_TICK_MS = 250;

/** Graceful shutdown: what `Restarting` advises, and how long closes may take. */
export const DEFAULT_RESTART_RECONNECT_IN_MS = 1_000;
export const DEFAULT_RESTART_TRY_FOR_MS = 5_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 2_000;

/** Longest config file read (bytes); real ones are a few hundred bytes. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;
