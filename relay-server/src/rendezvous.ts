/**
 * The pairing rendezvous `sdnet-relay` serves next to the relay: `PUT/GET/DELETE /pair/<R>`
 * (format and signatures: src/protocols/pairing/rendezvous-wire.ts). A device showing a
 * pairing code registers R → its EndpointId, relay URL and direct addresses; a device that
 * was told the words asks for R and dials what it gets.
 *
 * - **Authenticated by the initiator's key**: a PUT or DELETE is signed by the EndpointId it
 *   names, for its method, its R and a timestamp within 2 minutes. The first PUT for R claims
 *   it; only that key can refresh or withdraw it until it expires (409 for anyone else).
 * - **5-minute TTL** at most (a code's lifetime), whatever the client asks.
 * - **Rate-limited** per client address (token bucket, requests of every method), and
 *   **bounded**: at most `maxRecords` records (507 when full of live ones), `maxPerKey` per
 *   EndpointId, 4 KiB bodies read with a deadline.
 *
 * Whatever it stores is a hint: the joiner dials it and CPace decides; a lying or hijacked
 * rendezvous buys one online guess at a 96-bit secret.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIPv6 } from 'node:net';
import {
  encodeRecord,
  isRendezvousId,
  parseDeleteRequest,
  parsePutRequest,
  RENDEZVOUS_MAX_BODY_BYTES,
  RENDEZVOUS_PATH_PREFIX,
  RendezvousRequestError,
  type RendezvousRecord,
} from '../../src/protocols/pairing/rendezvous-wire.ts';

export interface RendezvousOptions {
  /** Records held at most (default 10,000). */
  maxRecords?: number;
  /** Records one EndpointId may hold (default 16). */
  maxPerKey?: number;
  /** Requests per second per client address (default 10; burst 3× that). `0`: no per-address limit (behind a proxy). */
  requestsPerSecond?: number;
  /** Client addresses tracked for the rate limit (default 10,000; the oldest are forgotten). */
  maxTrackedAddresses?: number;
  /** A request body must arrive within this long (ms, default 5 s). */
  bodyTimeoutMs?: number;
}

export const DEFAULT_RENDEZVOUS_OPTIONS: Required<RendezvousOptions> = {
  maxRecords: 10_000,
  maxPerKey: 16,
  requestsPerSecond: 10,
  maxTrackedAddresses: 10_000,
  bodyTimeoutMs: 5_000,
};

/** Counters of the rendezvous. */
export interface RendezvousStats {
  records: number;
  registered: number;
  withdrawn: number;
  lookups: number;
  hits: number;
  refused: number;
  rateLimited: number;
}

interface Entry {
  readonly record: RendezvousRecord;
  readonly expiresAt: number;
}

interface Bucket {
  tokens: number;
  last: number;
}

/** The address group a client is limited by: the IP, or the /64 of an IPv6 address. */
function addressGroup(ip: string): string {
  if (!isIPv6(ip) || ip.startsWith('::ffff:')) return ip;
  const full = ip.includes('::') ? expandV6(ip) : ip.split(':');
  return `${full.slice(0, 4).join(':')}::/64`;
}

function expandV6(ip: string): string[] {
  const [head, tail] = ip.split('::') as [string, string];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  return [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
}

export class PairRendezvous {
  readonly #options: Required<RendezvousOptions>;
  readonly #now: () => number;
  readonly #records = new Map<string, Entry>();
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep = 0;
  readonly #stats: RendezvousStats = { records: 0, registered: 0, withdrawn: 0, lookups: 0, hits: 0, refused: 0, rateLimited: 0 };

  constructor(options: RendezvousOptions = {}, now: () => number = Date.now) {
    this.#options = { ...DEFAULT_RENDEZVOUS_OPTIONS, ...options };
    for (const [k, v] of Object.entries(this.#options)) if (!Number.isFinite(v) || v < 0) throw new RangeError(`rendezvous ${k} must be a non-negative number`);
    this.#now = now;
  }

  stats(): RendezvousStats {
    this.#sweep(true);
    return { ...this.#stats, records: this.#records.size };
  }

  /** Drop expired records (at most once a second unless forced). */
  #sweep(force = false): void {
    const now = this.#now();
    if (!force && now - this.#lastSweep < 1000) return;
    this.#lastSweep = now;
    for (const [r, e] of this.#records) if (e.expiresAt <= now) this.#records.delete(r);
  }

  #live(r: string): Entry | undefined {
    const e = this.#records.get(r);
    if (e !== undefined && e.expiresAt <= this.#now()) {
      this.#records.delete(r);
      return undefined;
    }
    return e;
  }

  /** Take one request from the client's bucket; false when it is over its rate. */
  #admit(ip: string): boolean {
    const rate = this.#options.requestsPerSecond;
    if (rate === 0) return true;
    const key = addressGroup(ip);
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#options.maxTrackedAddresses) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: rate * 3, last: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(rate * 3, b.tokens + ((now - b.last) * rate) / 1000);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * Serve `req` if it is a rendezvous request (`/pair/...`); false otherwise (the caller
   * serves it). Call it before anything consumes the request body.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '/';
    if (!url.startsWith(RENDEZVOUS_PATH_PREFIX)) return false;
    const q = url.indexOf('?');
    const r = (q >= 0 ? url.slice(0, q) : url).slice(RENDEZVOUS_PATH_PREFIX.length);
    const method = req.method ?? 'GET';
    const reply = (status: number, body?: string): void => {
      if (status >= 400) this.#stats.refused++;
      const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
      if (status === 405) headers.Allow = 'GET, PUT, DELETE';
      if (body !== undefined) headers['Content-Type'] = status < 300 ? 'application/json' : 'text/plain; charset=utf-8';
      if (!res.headersSent) res.writeHead(status, headers).end(body);
    };
    if (!this.#admit(req.socket.remoteAddress ?? '?')) {
      req.resume();
      this.#stats.rateLimited++;
      res.setHeader('Retry-After', '1');
      reply(429, 'Too Many Requests\n');
      return true;
    }
    if (!isRendezvousId(r)) {
      req.resume();
      reply(400, 'A rendezvous id is 8 lower-case hex digits\n');
      return true;
    }
    this.#sweep();
    if (method === 'GET') {
      req.resume();
      this.#stats.lookups++;
      const e = this.#live(r);
      if (e === undefined) {
        reply(404, 'Not Found\n');
        return true;
      }
      this.#stats.hits++;
      reply(200, encodeRecord(e.record, e.expiresAt - this.#now()));
      return true;
    }
    if (method !== 'PUT' && method !== 'DELETE') {
      req.resume();
      reply(405, 'Method Not Allowed\n');
      return true;
    }
    void this.#readBody(req).then(
      (body) => {
        try {
          reply(method === 'PUT' ? this.#put(r, body) : this.#delete(r, body));
        } catch (err) {
          if (err instanceof RendezvousRequestError) reply(err.status, `${err.message}\n`);
          else reply(500, 'Internal Server Error\n');
        }
      },
      (err: unknown) => {
        const status = err instanceof RendezvousRequestError ? err.status : 400;
        reply(status, `${(err as Error).message}\n`);
        if (status === 413 || status === 408) req.socket.destroySoon();
      },
    );
    return true;
  }

  #readBody(req: IncomingMessage): Promise<Uint8Array> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > RENDEZVOUS_MAX_BODY_BYTES) {
      req.resume();
      return Promise.reject(new RendezvousRequestError(413, 'Payload Too Large'));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (err: Error | undefined, body?: Uint8Array): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          req.removeAllListeners('data');
          req.resume();
          reject(err);
        } else resolve(body!);
      };
      const timer = setTimeout(() => finish(new RendezvousRequestError(408, 'Request Timeout')), this.#options.bodyTimeoutMs);
      timer.unref?.();
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > RENDEZVOUS_MAX_BODY_BYTES) finish(new RendezvousRequestError(413, 'Payload Too Large'));
        else chunks.push(chunk);
      });
      req.on('end', () => finish(undefined, new Uint8Array(Buffer.concat(chunks))));
      req.on('error', (err) => finish(err));
      req.on('aborted', () => finish(new RendezvousRequestError(400, 'aborted')));
    });
  }

  #put(r: string, body: Uint8Array): number {
    const now = this.#now();
    const { record, ttlMs } = parsePutRequest(r, body, now);
    const existing = this.#live(r);
    if (existing !== undefined && existing.record.endpointId !== record.endpointId) throw new RendezvousRequestError(409, 'This rendezvous id is held by another key');
    if (existing === undefined) {
      if (this.#records.size >= this.#options.maxRecords) {
        this.#sweep(true);
        if (this.#records.size >= this.#options.maxRecords) throw new RendezvousRequestError(507, 'The rendezvous is full');
      }
      let mine = 0;
      for (const e of this.#records.values()) if (e.record.endpointId === record.endpointId && e.expiresAt > now) mine++;
      if (mine >= this.#options.maxPerKey) throw new RendezvousRequestError(429, `At most ${this.#options.maxPerKey} rendezvous per key`);
    }
    this.#records.set(r, { record, expiresAt: now + ttlMs });
    this.#stats.registered++;
    return 204;
  }

  #delete(r: string, body: Uint8Array): number {
    const { endpointId } = parseDeleteRequest(r, body, this.#now());
    const existing = this.#live(r);
    if (existing === undefined) return 204;
    if (existing.record.endpointId !== endpointId) throw new RendezvousRequestError(409, 'This rendezvous id is held by another key');
    this.#records.delete(r);
    this.#stats.withdrawn++;
    return 204;
  }
}
