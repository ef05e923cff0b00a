/**
 * `sdnet-relay`: an iroh-compatible relay server to deploy for your own fleet, and to embed
 * (tests, demos, an endpoint that carries its own relay).
 *
 * @module
 */
export { startRelayServer, type RelayServerHandle, type RelayServerStats } from './server.ts';
export type { RelayServerOptions, RelayServerLimits, RelayServerTiming, RateLimitOptions } from './config.ts';
export { PairRendezvous, DEFAULT_RENDEZVOUS_OPTIONS, type RendezvousOptions, type RendezvousStats } from './rendezvous.ts';
export type { AccessDecision, AccessHook, AccessPolicy, AccessRequest } from './access.ts';
export { jsonLogger, silentLogger, type LineSink, type Logger, type LogLevel } from './log.ts';
export { parsePrometheusText } from './metrics.ts';
export { PkarrRelay, DEFAULT_PKARR_OPTIONS, PKARR_PATH_PREFIX, type PkarrRelayOptions, type PkarrRelayStats } from './pkarr.ts';
