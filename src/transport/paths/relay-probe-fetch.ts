/**
 * Relay latency probes with `fetch` (browsers): `GET /ping` as `relay-probe.ts` does over
 * node:http (iroh-wire §1.10). A page usually is not the relay's origin, and relays send no
 * CORS headers, so the request is `no-cors`: its answer is opaque (no status), and an answer
 * at all is what counts — a relay that is down or unreachable fails the fetch. The body is
 * never read. The browser reuses the connection, so the best of several is the round trip.
 *
 * @module
 */
import type { RelayUrl } from '../../identity/relay-url.ts';
import { RELAY_PROBE_TIMEOUT_MS } from './limits.ts';
import type { RelayProbeOptions } from './relay-probe-options.ts';

/** The best `/ping` round trip to `url` in ms, or undefined if no probe was answered in time. Never throws. */
export async function probeRelayWithFetch(url: RelayUrl, options: RelayProbeOptions): Promise<number | undefined> {
  const target = new URL('ping', url.toURL());
  let best: number | undefined;
  for (let i = 0; i < options.count; i++) {
    if (options.signal?.aborted) break;
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? RELAY_PROBE_TIMEOUT_MS);
    const started = performance.now();
    let rtt: number | undefined;
    try {
      const res = await fetch(target, { mode: 'no-cors', cache: 'no-store', credentials: 'omit', signal: controller.signal });
      // Same-origin (or CORS) answers show their status; opaque ones do not.
      if (res.type === 'opaque' || res.status === 200) rtt = performance.now() - started;
      controller.abort(); // the body is not wanted
    } catch {
      rtt = undefined;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
    if (rtt === undefined) break;
    best = best === undefined ? rtt : Math.min(best, rtt);
  }
  return best;
}
