/**
 * Relay latency probes: `GET /ping` over HTTP(S), as iroh's net report does (iroh-wire §1.10)
 * to pick a home relay. The first request of a report also opens the connection; the
 * following ones reuse it, so the best of several is the request round trip.
 *
 * @module
 */
import http from 'node:http';
import https from 'node:https';
import type { RelayUrl } from '../../identity/relay-url.ts';
import { RELAY_PROBE_MAX_BODY, RELAY_PROBE_TIMEOUT_MS } from './limits.ts';
import type { RelayProbeOptions } from './relay-probe-options.ts';

export type { RelayProbeOptions } from './relay-probe-options.ts';

/**
 * The best `/ping` round trip to `url` in ms, or undefined if no probe got a 200 in time.
 * Never throws.
 */
export async function probeRelay(url: RelayUrl, options: RelayProbeOptions): Promise<number | undefined> {
  const target = new URL('ping', url.toURL());
  const secure = target.protocol === 'https:';
  const agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 1, ...(options.tls?.ca ? { ca: options.tls.ca } : {}) }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
  let best: number | undefined;
  try {
    for (let i = 0; i < options.count; i++) {
      if (options.signal?.aborted) break;
      const rtt = await once(target, secure, agent, options);
      if (rtt === undefined) break;
      best = best === undefined ? rtt : Math.min(best, rtt);
    }
  } finally {
    agent.destroy();
  }
  return best;
}

function once(target: URL, secure: boolean, agent: http.Agent, options: RelayProbeOptions): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = performance.now();
    let done = false;
    const finish = (v: number | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(v);
    };
    const get = secure ? https.get : http.get;
    const req = get(target, { agent, ...(secure && options.tls?.servername ? { servername: options.tls.servername } : {}), headers: { 'user-agent': 'sdnet' } }, (res) => {
      let body = 0;
      res.on('data', (chunk: Buffer) => {
        body += chunk.length;
        // A relay has nothing big to say here; a huge answer is not a relay.
        if (body > RELAY_PROBE_MAX_BODY) {
          req.destroy();
          finish(undefined);
        }
      });
      res.on('end', () => finish(res.statusCode === 200 ? performance.now() - started : undefined));
      res.on('error', () => finish(undefined));
    });
    req.on('error', () => finish(undefined));
    const timer = setTimeout(() => {
      req.destroy();
      finish(undefined);
    }, options.timeoutMs ?? RELAY_PROBE_TIMEOUT_MS);
    const onAbort = () => {
      req.destroy();
      finish(undefined);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
