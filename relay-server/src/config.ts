/**
 * Options of the relay server and how the `sdnet-relay` command builds them from flags and an
 * optional config file (JSON, or TOML when the file name ends in `.toml`). Flags override the
 * file; unknown keys in the file are errors, so a typo cannot silently disable a limit.
 *
 * @module
 */
import type { RendezvousOptions } from './rendezvous.ts';
import type { PkarrRelayOptions } from './pkarr.ts';
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseTomlDocument, TomlError } from 'smol-toml';
import type { CryptoProvider } from '../../src/transport/crypto/provider.ts';
import { PING_INTERVAL_MS, PONG_TIMEOUT_MS, SERVER_PING_JITTER_MAX_MS, SERVER_PING_JITTER_MIN_MS } from '../../src/relay/protocol/limits.ts';
import type { AccessHook, AccessPolicy } from './access.ts';
import {
  DEFAULT_HOST,
  DEFAULT_METRICS_HOST,
  DEFAULT_METRICS_PORT,
  DEFAULT_QAD_PORT,
  DEFAULT_PORT,
  DEFAULT_RESTART_RECONNECT_IN_MS,
  DEFAULT_RESTART_TRY_FOR_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_TICK_MS,
} from './defaults.ts';
import {
  DEFAULT_ACCEPT_BURST_PER_IP,
  DEFAULT_ACCEPT_RATE_PER_IP,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_CLIENTS,
  DEFAULT_MAX_CONNECTIONS_PER_IP,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_HANDSHAKING,
  DEFAULT_MAX_HANDSHAKING_PER_IP,
  DEFAULT_MAX_INACTIVE_PER_ENDPOINT,
  DEFAULT_MAX_QUEUED_BYTES_TOTAL,
  DEFAULT_MAX_SENT_TO_PER_CLIENT,
  DEFAULT_RATE_LIMIT_BURST_BYTES,
  DEFAULT_RATE_LIMIT_BYTES_PER_SECOND,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SEND_QUEUE_BYTES,
  DEFAULT_SEND_QUEUE_DEPTH,
  DEFAULT_WRITE_TIMEOUT_MS,
  inRange,
  LIMIT_RANGES,
  MAX_CONFIG_DEPTH,
  MAX_CONFIG_FILE_BYTES,
  MAX_HEADER_BYTES,
  OPTION_RANGES,
  TIMING_RANGES,
  type IntRange,
} from './limits.ts';
import { LOG_LEVELS, type Logger, type LogLevel } from './log.ts';

/** Limits on what clients can make the relay hold (defaults and reasons: `./limits.ts`). */
export interface RelayServerLimits {
  /** Authenticated relay clients at once; more get 503. */
  maxClients: number;
  /** Connections not yet authenticated (HTTP requests, TLS and relay handshakes), all sources. */
  maxHandshaking: number;
  /** TCP connections per address group (IPv4 address, IPv6 /64); 0 = unlimited. */
  maxConnectionsPerIp: number;
  /** Of those, not yet authenticated; 0 = unlimited. */
  maxHandshakingPerIp: number;
  /** New TCP connections per second per address group (token bucket); 0 = unlimited. */
  acceptRatePerIp: number;
  /** Burst of that bucket. */
  acceptBurstPerIp: number;
  /** From TCP accept (or the last response) to a complete request head. */
  requestTimeoutMs: number;
  /** From TCP accept to `ServerConfirmsAuth`, TLS included. */
  handshakeTimeoutMs: number;
  /** Largest HTTP request head; larger gets 431. */
  maxHeaderBytes: number;
  /** Largest WebSocket message (iroh `MAX_FRAME_SIZE`). */
  maxFrameBytes: number;
  /** Frames queued towards one client (iroh `PER_CLIENT_SEND_QUEUE_DEPTH`). */
  sendQueueDepth: number;
  /** Bytes queued towards one client. */
  sendQueueBytes: number;
  /** Bytes queued towards all clients together. */
  maxQueuedBytesTotal: number;
  /** A client whose queue makes no progress this long is dropped (iroh `SERVER_WRITE_TIMEOUT`). */
  writeTimeoutMs: number;
  /** Older connections kept per EndpointId. */
  maxInactivePerEndpoint: number;
  /** Peers remembered per client for `EndpointGone`. */
  maxSentToPerClient: number;
}

export interface RelayServerTiming {
  /** How often deadlines are checked. */
  tickMs: number;
  pingIntervalMs: number;
  pingJitterMinMs: number;
  pingJitterMaxMs: number;
  pongTimeoutMs: number;
  /** What `Restarting` advises on graceful shutdown. */
  restartReconnectInMs: number;
  restartTryForMs: number;
  /** How long a graceful shutdown waits for clients to close. */
  shutdownGraceMs: number;
}

export interface RateLimitOptions {
  bytesPerSecond: number;
  /** Defaults to max(bytesPerSecond, 1 MiB): at least one maximal frame. */
  burstBytes?: number;
}

/** Options of {@link startRelayServer}. */
export interface RelayServerOptions {
  /** Listen address. Default `127.0.0.1`. */
  host?: string;
  /** Listen port; 0 picks a free one. Default 0 programmatically, 3340 from the command line. */
  port?: number;
  /** Serve HTTPS with this PEM certificate chain and key. */
  tls?: { cert: string | Uint8Array; key: string | Uint8Array };
  /** With TLS, also serve `/generate_204` on this plain-HTTP port (iroh serves it on port 80). */
  captivePortalPort?: number;
  /** Prometheus `/metrics` on its own listener (host default `127.0.0.1`); off unless given. */
  metrics?: { host?: string; port?: number } | false;
  access?: AccessPolicy;
  /** Replaces the built-in allow-list/token policy. */
  accessHook?: AccessHook;
  /** Per-client receive limit; `false` turns it off. Default 2 MiB/s, burst 2 MiB. */
  rateLimit?: RateLimitOptions | false;
  limits?: Partial<RelayServerLimits>;
  timing?: Partial<RelayServerTiming>;
  /** The pairing rendezvous (`/pair/<R>`, rendezvous.ts); `false` turns it off. On by default. */
  rendezvous?: RendezvousOptions | false;
  /** The pkarr relay (`/pkarr/<z32>`, pkarr.ts); `false` turns it off. On by default. */
  pkarr?: PkarrRelayOptions | false;
  /**
   * QUIC address discovery (qad.ts): a UDP port (default host: the relay's; port 0 = any free
   * one) where clients learn their public address. Off unless given (the command line turns it
   * on at port 7842).
   */
  qad?: { host?: string; port?: number; maxConnections?: number } | false;
  /** Serve the files under this directory (`--static DIR`, static-files.ts) on the relay's paths it does not use itself. */
  staticDir?: string;
  logger?: Logger;
  crypto?: CryptoProvider;
}

export const DEFAULT_LIMITS: RelayServerLimits = {
  maxClients: DEFAULT_MAX_CLIENTS,
  maxHandshaking: DEFAULT_MAX_HANDSHAKING,
  maxConnectionsPerIp: DEFAULT_MAX_CONNECTIONS_PER_IP,
  maxHandshakingPerIp: DEFAULT_MAX_HANDSHAKING_PER_IP,
  acceptRatePerIp: DEFAULT_ACCEPT_RATE_PER_IP,
  acceptBurstPerIp: DEFAULT_ACCEPT_BURST_PER_IP,
  requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
  handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
  maxHeaderBytes: MAX_HEADER_BYTES,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  sendQueueDepth: DEFAULT_SEND_QUEUE_DEPTH,
  sendQueueBytes: DEFAULT_SEND_QUEUE_BYTES,
  maxQueuedBytesTotal: DEFAULT_MAX_QUEUED_BYTES_TOTAL,
  writeTimeoutMs: DEFAULT_WRITE_TIMEOUT_MS,
  maxInactivePerEndpoint: DEFAULT_MAX_INACTIVE_PER_ENDPOINT,
  maxSentToPerClient: DEFAULT_MAX_SENT_TO_PER_CLIENT,
};

export const DEFAULT_TIMING: RelayServerTiming = {
  tickMs: DEFAULT_TICK_MS,
  pingIntervalMs: PING_INTERVAL_MS,
  pingJitterMinMs: SERVER_PING_JITTER_MIN_MS,
  pingJitterMaxMs: SERVER_PING_JITTER_MAX_MS,
  pongTimeoutMs: PONG_TIMEOUT_MS,
  restartReconnectInMs: DEFAULT_RESTART_RECONNECT_IN_MS,
  restartTryForMs: DEFAULT_RESTART_TRY_FOR_MS,
  shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS,
};

export const DEFAULT_RATE_LIMIT: Required<RateLimitOptions> = {
  bytesPerSecond: DEFAULT_RATE_LIMIT_BYTES_PER_SECOND,
  burstBytes: DEFAULT_RATE_LIMIT_BURST_BYTES,
};

/** Bad flags or a bad config file; the command prints the message and exits with status 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * An integer option within `range`. Flags arrive as strings of digits; file values must be
 * numbers already (a TOML or JSON integer), so `"10"` in a file is an error, as is `1.5`,
 * `1e3` written as a float, or an integer beyond 2^53 (smol-toml hands those over as BigInt).
 */
function int(value: unknown, what: string, range: IntRange, fromFlag = false): number {
  const n = fromFlag && typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= range.min && n <= range.max) return n;
  const shown = typeof value === 'bigint' ? value.toString() : JSON.stringify(value) ?? String(value);
  throw new ConfigError(`${what} must be an integer from ${range.min} to ${range.max}, got ${shown}`);
}

function port(value: unknown, what: string, fromFlag = false): number {
  return int(value, what, OPTION_RANGES.port, fromFlag);
}

/** Check programmatic options against the same ranges as the command line (throws RangeError). */
export function checkRanges(limits: RelayServerLimits, timing: RelayServerTiming): void {
  for (const [k, range] of Object.entries(LIMIT_RANGES)) {
    const v = limits[k as keyof RelayServerLimits];
    if (!inRange(v, range)) throw new RangeError(`limits.${k} must be an integer from ${range.min} to ${range.max}, got ${String(v)}`);
  }
  for (const [k, range] of Object.entries(TIMING_RANGES)) {
    const v = timing[k as keyof RelayServerTiming];
    if (!inRange(v, range)) throw new RangeError(`timing.${k} must be an integer from ${range.min} to ${range.max}, got ${String(v)}`);
  }
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${what} must be a non-empty string`);
  return value;
}

function strList(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new ConfigError(`${what} must be a list of strings`);
  return value as string[];
}

function table(value: unknown, what: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${what} must be a table`);
  for (const k of Object.keys(value)) if (!keys.includes(k)) throw new ConfigError(`Unknown key ${what === 'config' ? k : `${what}.${k}`} (known: ${keys.join(', ')})`);
  return value as Record<string, unknown>;
}

/** What the command line asks for. */
export interface CliConfig {
  help: boolean;
  version: boolean;
  logLevel: LogLevel;
  /** File paths of the TLS certificate and key (read by the command). */
  tlsFiles?: { cert: string; key: string };
  options: RelayServerOptions;
}

export const USAGE = `Usage: sdnet-relay [options]

Runs an iroh-compatible relay server. With no options it listens on
http://127.0.0.1:${DEFAULT_PORT}/ with metrics on http://${DEFAULT_METRICS_HOST}:${DEFAULT_METRICS_PORT}/metrics.

  --config FILE                  JSON or TOML (*.toml) config file; flags override it
  --host ADDR                    listen address (default ${DEFAULT_HOST})
  --port N                       listen port (default ${DEFAULT_PORT}; 0 = any free port)
  --tls-cert FILE --tls-key FILE serve HTTPS (TLS 1.3) with this PEM certificate chain and key
  --captive-portal-port N        with TLS, serve /generate_204 over plain HTTP on this port
  --metrics-host ADDR            metrics listen address (default ${DEFAULT_METRICS_HOST}, whatever --host is)
  --metrics-port N               Prometheus /metrics port (default ${DEFAULT_METRICS_PORT}; 0 = any free port)
  --no-metrics                   no metrics listener
  --qad-port N                   QUIC address discovery on this UDP port (default ${DEFAULT_QAD_PORT}, iroh's; 0 = any free port)
  --no-qad                       no QUIC address discovery
  --allow-endpoint ID            admit this EndpointId (repeatable)
  --token TOKEN                  admit clients presenting this bearer token (repeatable)
  --rate-limit BYTES_PER_SEC     per-client receive limit (default ${DEFAULT_RATE_LIMIT_BYTES_PER_SECOND}; 0 = off)
  --rate-burst BYTES             per-client burst (default ${DEFAULT_RATE_LIMIT_BURST_BYTES})
  --max-clients N                authenticated clients at once (default ${DEFAULT_MAX_CLIENTS})
  --max-handshaking N            connections not yet authenticated, all sources (default ${DEFAULT_MAX_HANDSHAKING})
  --max-connections-per-ip N     TCP connections per IPv4 address or IPv6 /64 (default ${DEFAULT_MAX_CONNECTIONS_PER_IP}; 0 = unlimited)
  --max-handshaking-per-ip N     of those, not yet authenticated (default ${DEFAULT_MAX_HANDSHAKING_PER_IP}; 0 = unlimited)
  --accept-rate-per-ip N         new connections per second per address (default ${DEFAULT_ACCEPT_RATE_PER_IP}, burst ${DEFAULT_ACCEPT_BURST_PER_IP}; 0 = unlimited)
  --handshake-timeout-ms N       accept-to-authenticated deadline, TLS included (default ${DEFAULT_HANDSHAKE_TIMEOUT_MS})
  --log-level LEVEL              debug, info, warn, error or silent (default info)
  --static DIR                   also serve the files under DIR (GET/HEAD; / is DIR/index.html), e.g. a page using sdnet/browser
  --help, --version

With --allow-endpoint and/or --token the relay admits only listed ids or token holders.
Behind a TLS-terminating proxy every client has the proxy's address: set the per-IP
limits to 0. Logs are JSON lines on stderr; the relay URL is printed on stdout once it
accepts connections. SIGINT/SIGTERM shut down gracefully (clients are told Restarting).`;

/** One line from a parser's message (smol-toml's span several lines with a code excerpt). */
function oneLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

/** Read and parse a config file (JSON, or TOML for `*.toml`). */
export function readConfigFile(path: string): Record<string, unknown> {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new ConfigError(`Cannot read config file ${path}: ${oneLine((err as Error).message)}`);
  }
  if (size > MAX_CONFIG_FILE_BYTES) throw new ConfigError(`Config file ${path} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read config file ${path}: ${oneLine((err as Error).message)}`);
  }
  let v: unknown;
  try {
    // smol-toml: TOML 1.0 as specified, nesting bounded (no stack overflow on [[[[…), integers
    // beyond 2^53 as BigInt (then refused by the range checks) rather than rounded.
    v = path.endsWith('.toml') ? parseTomlDocument(text, { maxDepth: MAX_CONFIG_DEPTH, integersAsBigInt: 'asNeeded', unsafeKeyBehaviour: 'throw' }) : JSON.parse(text);
  } catch (err) {
    if (err instanceof TomlError) throw new ConfigError(`Cannot parse config file ${path}: line ${err.line}, column ${err.column}: ${oneLine(err.message)}`);
    if (err instanceof SyntaxError) throw new ConfigError(`Cannot parse config file ${path}: ${oneLine(err.message)}`);
    // Anything else (a RangeError from a deeply nested JSON document, …) is still a bad file.
    throw new ConfigError(`Cannot parse config file ${path}: ${oneLine(String((err as Error)?.message ?? err))}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`Config file ${path} must hold a table (a JSON object)`);
  return v as Record<string, unknown>;
}

const TOP_KEYS = ['host', 'port', 'log_level', 'tls', 'captive_portal_port', 'metrics', 'qad', 'access', 'rate_limit', 'limits', 'timing'] as const;

/** `[limits]` keys of the config file. */
const LIMIT_KEYS = {
  max_clients: 'maxClients',
  max_handshaking: 'maxHandshaking',
  max_connections_per_ip: 'maxConnectionsPerIp',
  max_handshaking_per_ip: 'maxHandshakingPerIp',
  accept_rate_per_ip: 'acceptRatePerIp',
  accept_burst_per_ip: 'acceptBurstPerIp',
  request_timeout_ms: 'requestTimeoutMs',
  handshake_timeout_ms: 'handshakeTimeoutMs',
  max_header_bytes: 'maxHeaderBytes',
  max_frame_bytes: 'maxFrameBytes',
  send_queue_depth: 'sendQueueDepth',
  send_queue_bytes: 'sendQueueBytes',
  max_queued_bytes_total: 'maxQueuedBytesTotal',
  write_timeout_ms: 'writeTimeoutMs',
  max_inactive_per_endpoint: 'maxInactivePerEndpoint',
  max_sent_to_per_client: 'maxSentToPerClient',
} as const satisfies Record<string, keyof RelayServerLimits>;

/** `[timing]` keys of the config file. */
const TIMING_KEYS = {
  ping_interval_ms: 'pingIntervalMs',
  pong_timeout_ms: 'pongTimeoutMs',
  tick_ms: 'tickMs',
  shutdown_grace_ms: 'shutdownGraceMs',
  restart_reconnect_in_ms: 'restartReconnectInMs',
  restart_try_for_ms: 'restartTryForMs',
} as const satisfies Record<string, keyof RelayServerTiming>;

/** Apply a parsed config file onto a {@link CliConfig}. */
function applyFile(file: Record<string, unknown>, cfg: CliConfig): void {
  const root = table(file, 'config', TOP_KEYS);
  const o = cfg.options;
  if (root.host !== undefined) o.host = str(root.host, 'host');
  if (root.port !== undefined) o.port = port(root.port, 'port');
  if (root.log_level !== undefined) cfg.logLevel = level(root.log_level);
  if (root.tls !== undefined) {
    const t = table(root.tls, 'tls', ['cert_file', 'key_file']);
    cfg.tlsFiles = { cert: str(t.cert_file, 'tls.cert_file'), key: str(t.key_file, 'tls.key_file') };
  }
  if (root.captive_portal_port !== undefined) o.captivePortalPort = port(root.captive_portal_port, 'captive_portal_port');
  if (root.metrics !== undefined) {
    const m = table(root.metrics, 'metrics', ['enabled', 'host', 'port']);
    if (m.enabled === false) o.metrics = false;
    else {
      if (m.enabled !== undefined && m.enabled !== true) throw new ConfigError('metrics.enabled must be true or false');
      o.metrics = {
        host: m.host === undefined ? DEFAULT_METRICS_HOST : str(m.host, 'metrics.host'),
        port: m.port === undefined ? DEFAULT_METRICS_PORT : port(m.port, 'metrics.port'),
      };
    }
  }
  if (root.qad !== undefined) {
    const q = table(root.qad, 'qad', ['enabled', 'port']);
    if (q.enabled === false) o.qad = false;
    else {
      if (q.enabled !== undefined && q.enabled !== true) throw new ConfigError('qad.enabled must be true or false');
      o.qad = { port: q.port === undefined ? DEFAULT_QAD_PORT : port(q.port, 'qad.port') };
    }
  }
  if (root.access !== undefined) {
    const a = table(root.access, 'access', ['allow_endpoints', 'tokens']);
    o.access = {
      allowEndpoints: a.allow_endpoints === undefined ? undefined : strList(a.allow_endpoints, 'access.allow_endpoints'),
      tokens: a.tokens === undefined ? undefined : strList(a.tokens, 'access.tokens'),
    };
  }
  if (root.rate_limit !== undefined) {
    const r = table(root.rate_limit, 'rate_limit', ['bytes_per_second', 'burst_bytes']);
    const bps = int(r.bytes_per_second, 'rate_limit.bytes_per_second', OPTION_RANGES.rateLimitBytesPerSecond);
    o.rateLimit = bps === 0 ? false : { bytesPerSecond: bps, burstBytes: r.burst_bytes === undefined ? undefined : int(r.burst_bytes, 'rate_limit.burst_bytes', OPTION_RANGES.rateLimitBurstBytes) };
  }
  if (root.limits !== undefined) {
    const l = table(root.limits, 'limits', Object.keys(LIMIT_KEYS));
    const out: Partial<RelayServerLimits> = {};
    for (const [k, name] of Object.entries(LIMIT_KEYS)) if (l[k] !== undefined) out[name] = int(l[k], `limits.${k}`, LIMIT_RANGES[name]);
    o.limits = out;
  }
  if (root.timing !== undefined) {
    const t = table(root.timing, 'timing', Object.keys(TIMING_KEYS));
    const out: Partial<RelayServerTiming> = {};
    for (const [k, name] of Object.entries(TIMING_KEYS)) if (t[k] !== undefined) out[name] = int(t[k], `timing.${k}`, TIMING_RANGES[name]);
    o.timing = out;
  }
}

function level(value: unknown): LogLevel {
  if (typeof value !== 'string' || !(LOG_LEVELS as readonly string[]).includes(value)) throw new ConfigError(`log level must be one of ${LOG_LEVELS.join(', ')}`);
  return value as LogLevel;
}

/**
 * Build the configuration from command-line arguments (without `node` and the script).
 *
 * @throws {ConfigError} on bad usage or a bad config file
 */
export function parseCli(argv: readonly string[]): CliConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'captive-portal-port': { type: 'string' },
        'metrics-host': { type: 'string' },
        'metrics-port': { type: 'string' },
        'no-metrics': { type: 'boolean' },
        'qad-port': { type: 'string' },
        'no-qad': { type: 'boolean' },
        'allow-endpoint': { type: 'string', multiple: true },
        token: { type: 'string', multiple: true },
        'rate-limit': { type: 'string' },
        'rate-burst': { type: 'string' },
        'max-clients': { type: 'string' },
        'max-handshaking': { type: 'string' },
        'max-connections-per-ip': { type: 'string' },
        'max-handshaking-per-ip': { type: 'string' },
        'accept-rate-per-ip': { type: 'string' },
        'handshake-timeout-ms': { type: 'string' },
        'log-level': { type: 'string' },
        static: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new ConfigError(oneLine((err as Error).message));
  }
  const v = parsed.values;
  const cfg: CliConfig = {
    help: v.help === true,
    version: v.version === true,
    logLevel: 'info',
    options: { host: DEFAULT_HOST, port: DEFAULT_PORT, metrics: { host: DEFAULT_METRICS_HOST, port: DEFAULT_METRICS_PORT }, qad: { port: DEFAULT_QAD_PORT } },
  };
  if (v.config !== undefined) applyFile(readConfigFile(v.config), cfg);
  const o = cfg.options;
  if (v.host !== undefined) o.host = str(v.host, '--host');
  if (v.port !== undefined) o.port = port(v.port, '--port', true);
  if ((v['tls-cert'] === undefined) !== (v['tls-key'] === undefined)) throw new ConfigError('--tls-cert and --tls-key go together');
  if (v['tls-cert'] !== undefined) cfg.tlsFiles = { cert: v['tls-cert'], key: v['tls-key']! };
  if (v['captive-portal-port'] !== undefined) o.captivePortalPort = port(v['captive-portal-port'], '--captive-portal-port', true);
  if (v['no-metrics'] === true) {
    if (v['metrics-port'] !== undefined || v['metrics-host'] !== undefined) throw new ConfigError('--no-metrics conflicts with --metrics-port/--metrics-host');
    o.metrics = false;
  } else if (v['metrics-port'] !== undefined || v['metrics-host'] !== undefined) {
    const prev = o.metrics === false || o.metrics === undefined ? { host: DEFAULT_METRICS_HOST, port: DEFAULT_METRICS_PORT } : o.metrics;
    o.metrics = {
      host: v['metrics-host'] !== undefined ? str(v['metrics-host'], '--metrics-host') : prev.host,
      port: v['metrics-port'] !== undefined ? port(v['metrics-port'], '--metrics-port', true) : prev.port,
    };
  }
  if (v['no-qad'] === true) {
    if (v['qad-port'] !== undefined) throw new ConfigError('--no-qad conflicts with --qad-port');
    o.qad = false;
  } else if (v['qad-port'] !== undefined) o.qad = { port: port(v['qad-port'], '--qad-port', true) };
  if (v['allow-endpoint'] !== undefined || v.token !== undefined) {
    o.access = {
      allowEndpoints: v['allow-endpoint'] ?? o.access?.allowEndpoints,
      tokens: v.token ?? o.access?.tokens,
    };
  }
  if (v['rate-limit'] !== undefined) {
    const bps = int(v['rate-limit'], '--rate-limit', OPTION_RANGES.rateLimitBytesPerSecond, true);
    o.rateLimit = bps === 0 ? false : { bytesPerSecond: bps, burstBytes: o.rateLimit ? o.rateLimit.burstBytes : undefined };
  }
  if (v['rate-burst'] !== undefined) {
    const burst = int(v['rate-burst'], '--rate-burst', OPTION_RANGES.rateLimitBurstBytes, true);
    if (o.rateLimit === false) throw new ConfigError('--rate-burst needs a rate limit');
    o.rateLimit = { bytesPerSecond: o.rateLimit?.bytesPerSecond ?? DEFAULT_RATE_LIMIT_BYTES_PER_SECOND, burstBytes: burst };
  }
  const limits: Partial<RelayServerLimits> = { ...o.limits };
  const flagLimits = {
    'max-clients': 'maxClients',
    'max-handshaking': 'maxHandshaking',
    'max-connections-per-ip': 'maxConnectionsPerIp',
    'max-handshaking-per-ip': 'maxHandshakingPerIp',
    'accept-rate-per-ip': 'acceptRatePerIp',
    'handshake-timeout-ms': 'handshakeTimeoutMs',
  } as const satisfies Record<string, keyof RelayServerLimits>;
  for (const [flag, name] of Object.entries(flagLimits)) {
    const value = v[flag as keyof typeof v];
    if (value !== undefined) limits[name] = int(value, `--${flag}`, LIMIT_RANGES[name], true);
  }
  o.limits = limits;
  if (v['log-level'] !== undefined) cfg.logLevel = level(v['log-level']);
  if (v.static !== undefined) {
    let info;
    try {
      info = statSync(v.static);
    } catch {
      throw new ConfigError(`--static: no such directory: ${v.static}`);
    }
    if (!info.isDirectory()) throw new ConfigError(`--static: not a directory: ${v.static}`);
    o.staticDir = v.static;
  }
  return cfg;
}
