/**
 * Options of a relay latency probe, shared by the node:http probe (`relay-probe.ts`) and the
 * `fetch` one (`relay-probe-fetch.ts`).
 *
 * @module
 */
import type { NodeTlsOptions } from '../../relay/client/node-transport.ts';

export interface RelayProbeOptions {
  /** Probes to send one after another; the best round trip is reported. */
  count: number;
  /** TLS options (the node:http probe only). */
  tls?: NodeTlsOptions;
  timeoutMs?: number;
  signal?: AbortSignal;
}
