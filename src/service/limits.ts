/**
 * Limits and timers of the device service: sizes of files read from the data dir, how many
 * devices the registry keeps, and the reconnect / health-check timing.
 *
 * @module
 */

/** Largest `devices.json` read (bytes); a bigger file is treated as corrupt. */
export const MAX_REGISTRY_FILE_BYTES = 16 * 1024 * 1024;
/** Devices remembered (paired and discovered together); discovery beyond this is dropped. */
export const MAX_DEVICES = 10_000;
/** Largest `device.json` read (bytes). */
export const MAX_IDENTITY_FILE_BYTES = 64 * 1024;
/** Device names: characters. */
export const MAX_DEVICE_NAME_LENGTH = 64;
/** OS / version / app-version strings: characters. */
export const MAX_INFO_FIELD_LENGTH = 128;
/** Addresses remembered per device. */
export const MAX_DEVICE_ADDRESSES = 16;

/** Registry writes of changes that are not pairings (last seen, addresses) wait this long to coalesce (ms). */
export const REGISTRY_SAVE_DELAY_MS = 250;

/** Health check: a ping this often on each connected device's messaging connection (ms). */
export const HEALTH_INTERVAL_MS = 2_000;
/** Health check: a ping unanswered this long counts as a miss (ms). */
export const HEALTH_TIMEOUT_MS = 2_500;
/** Health check: this many misses in a row and the connection is closed as lost. */
export const HEALTH_MAX_MISSES = 2;

/** Reconnect backoff: first delay, growth factor, ceiling (ms), and ± jitter fraction. */
export const RECONNECT_MIN_MS = 250;
export const RECONNECT_FACTOR = 2;
export const RECONNECT_MAX_MS = 5_000;
export const RECONNECT_JITTER = 0.25;
/** A dial may take this long before it counts as failed (ms). */
export const DIAL_TIMEOUT_MS = 8_000;
/**
 * Two connections to one device on one ALPN within this long of each other are a
 * simultaneous dial and the deterministic tie-break decides; a later one replaces the older
 * (the peer evidently lost it, e.g. it restarted).
 */
export const DIAL_RACE_WINDOW_MS = 3_000;
/** Commands waiting in the event loop's queue at most. */
export const MAX_QUEUED_COMMANDS = 10_000;
