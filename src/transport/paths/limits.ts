/**
 * Limits of the paths layer: how many relays and relayed peers an endpoint keeps state for,
 * and its timers.
 *
 * @module
 */

/** Relay connections open at once (the home relay and relays opened to reach peers). */
export const MAX_RELAY_CLIENTS = 32;
/** (relay, endpoint id) path objects remembered for received datagrams (oldest forgotten first). */
export const MAX_RELAY_PATHS = 4096;
/** A relay opened to reach a peer is closed after this long without a datagram either way. */
export const RELAY_IDLE_TIMEOUT_MS = 60_000;
/** How often idle relays are looked for. */
export const RELAY_IDLE_SWEEP_MS = 10_000;
/** One `/ping` latency probe may take this long. */
export const RELAY_PROBE_TIMEOUT_MS = 5_000;
/** Latency probes per relay in one report (the best counts). */
export const RELAY_PROBES_PER_REPORT = 3;
/** A new report (home relay choice) this often while online. */
export const RELAY_REPORT_INTERVAL_MS = 5 * 60_000;
/** Retry delays while no relay answers a probe: doubling from the first to the last. */
export const RELAY_REPORT_RETRY_MIN_MS = 1_000;
export const RELAY_REPORT_RETRY_MAX_MS = 30_000;
/** The home relay moves only to one this much faster (ms) and 20 % better. */
export const HOME_RELAY_MIN_IMPROVEMENT_MS = 5;
/** A home relay disconnected this long makes the endpoint look for another. */
export const HOME_RELAY_DOWN_MS = 10_000;
/** A pooled response body read from `/ping` at most (bytes). */
export const RELAY_PROBE_MAX_BODY = 4096;
/** Our direct addresses are cached this long (interfaces change rarely). */
export const DIRECT_ADDRESS_CACHE_MS = 5_000;

/** Direct addresses of a peer that a dial sends its first flight to (a ticket may list 1,024). */
export const MAX_DIAL_DIRECT = 8;
/** Relay URLs of a peer that a dial sends its first flight through. */
export const MAX_DIAL_RELAYS = 2;
