/**
 * The pkarr relay `sdnet-relay` serves next to the relay, like n0's iroh-dns-server:
 * `PUT/GET /pkarr/<z32>` with body `signature ‖ timestamp µs ‖ DNS message`
 * (pairing-transfer.md C, src/discovery/pkarr.ts). An endpoint given only `--relay URL`
 * publishes its `_iroh` record here, and anyone who knows its id resolves it here.
 *
 * - **Signature checked** against the key in the URL (400 otherwise).
 * - **Newer-timestamp rule**: a PUT older than the record held is refused with 409, an equal
 *   timestamp with other content also 409, the same packet again 204 (pkarr relays).
 * - **Size limit**: 1072-byte bodies (64 + 8 + 1000), 413 above, without reading further.
 * - **Rate-limited** per client address group (429), PUTs and GETs separately counted.
 * - **Bounded store with expiry**: records are served for `recordTtlMs` after their last PUT;
 *   when full, the least recently published record makes room (a flood from many keys cannot
 *   grow it, only churn it).
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PublicKey } from '../../src/identity/keys.ts';
import { verifyPacket } from '../../src/discovery/pkarr.ts';
import { MAX_PKARR_BODY_BYTES, PKARR_MAX_FUTURE_US, PKARR_RECORD_TTL_MS, PKARR_STORE_MAX_RECORDS } from '../../src/discovery/limits.ts';
import { equalBytes } from '../../src/util/bytes.ts';

export const PKARR_PATH_PREFIX = '/pkarr/';

export interface PkarrRelayOptions {
  /** Records held at most (default 10,000); the least recently published makes room. */
  maxRecords?: number;
  /** How long a record is served after its last PUT (ms, default 2 h). */
  recordTtlMs?: number;
  /** PUTs per second per client address group (default 2; burst 10× that). `0`: unlimited. */
  putsPerSecond?: number;
  /** GETs per second per client address group (default 20; burst 5× that). `0`: unlimited. */
  getsPerSecond?: number;
  /** Client address groups tracked for the rate limit (default 10,000). */
  maxTrackedAddresses?: number;
  /** A request body must arrive within this long (ms, default 5 s). */
  bodyTimeoutMs?: number;
}

export const DEFAULT_PKARR_OPTIONS: Required<PkarrRelayOptions> = {
  maxRecords: PKARR_STORE_MAX_RECORDS,
  recordTtlMs: PKARR_RECORD_TTL_MS,
  putsPerSecond: 2,
  getsPerSecond: 20,
  maxTrackedAddresses: 10_000,
  bodyTimeoutMs: 5_000,
};

export interface PkarrRelayStats {
  records: number;
  published: number;
  lookups: number;
  hits: number;
  refused: number;
  rateLimited: number;
  evicted: number;
}

interface Entry {
  readonly timestampUs: bigint;
  readonly body: Uint8Array;
  readonly expiresAt: number;
}

interface Bucket {
  tokens: number;
  last: number;
}

class RequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class PkarrRelay {
  readonly #o: Required<PkarrRelayOptions>;
  readonly #now: () => number;
  readonly #records = new Map<string, Entry>();
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep = 0;
  readonly #stats: PkarrRelayStats = { records: 0, published: 0, lookups: 0, hits: 0, refused: 0, rateLimited: 0, evicted: 0 };

  constructor(options: PkarrRelayOptions = {}, now: () => number = Date.now) {
    this.#o = { ...DEFAULT_PKARR_OPTIONS, ...options };
    for (const [k, v] of Object.entries(this.#o)) if (!Number.isFinite(v) || v < 0) throw new RangeError(`pkarr ${k} must be a non-negative number`);
    if (this.#o.maxRecords < 1) throw new RangeError('pkarr maxRecords must be at least 1');
    this.#now = now;
  }

  stats(): PkarrRelayStats {
    this.#sweep(true);
    return { ...this.#stats, records: this.#records.size };
  }

  #sweep(force = false): void {
    const now = this.#now();
    if (!force && now - this.#lastSweep < 1000) return;
    this.#lastSweep = now;
    for (const [k, e] of this.#records) if (e.expiresAt <= now) this.#records.delete(k);
  }

  #live(key: string): Entry | undefined {
    const e = this.#records.get(key);
    if (e !== undefined && e.expiresAt <= this.#now()) {
      this.#records.delete(key);
      return undefined;
    }
    return e;
  }

  /** The record held for `key` (z32), for the DNS server. */
  lookup(key: string): Uint8Array | undefined {
    return this.#live(key)?.body;
  }

  #admit(group: string, kind: 'put' | 'get'): boolean {
    const rate = kind === 'put' ? this.#o.putsPerSecond : this.#o.getsPerSecond;
    if (rate === 0) return true;
    const burst = rate * (kind === 'put' ? 10 : 5);
    const key = `${kind}|${group}`;
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#o.maxTrackedAddresses) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: burst, last: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.last) * rate) / 1000);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * Serve `req` if it is a pkarr request (`/pkarr/...`); false otherwise. `group` is the
   * client's address group (the server's per-IP admission key). Call it before anything
   * consumes the request body.
   */
  handle(req: IncomingMessage, res: ServerResponse, group: string): boolean {
    const url = req.url ?? '/';
    if (!url.startsWith(PKARR_PATH_PREFIX)) return false;
    const q = url.indexOf('?');
    const keyText = (q >= 0 ? url.slice(0, q) : url).slice(PKARR_PATH_PREFIX.length);
    const method = req.method ?? 'GET';
    const reply = (status: number, body?: Uint8Array | string): void => {
      if (status >= 400) this.#stats.refused++;
      const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
      if (status === 405) headers.Allow = 'GET, HEAD, PUT';
      if (body !== undefined) headers['Content-Type'] = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/pkarr.org/relays#payload';
      if (!res.headersSent) res.writeHead(status, headers).end(method === 'HEAD' ? undefined : body);
    };
    const isPut = method === 'PUT';
    if (!isPut && method !== 'GET' && method !== 'HEAD') {
      req.resume();
      reply(405, 'Method Not Allowed\n');
      return true;
    }
    if (!this.#admit(group, isPut ? 'put' : 'get')) {
      req.resume();
      this.#stats.rateLimited++;
      res.setHeader('Retry-After', '1');
      reply(429, 'Too Many Requests\n');
      if (isPut) req.socket.destroySoon();
      return true;
    }
    let key: PublicKey;
    try {
      key = PublicKey.fromZ32(keyText);
    } catch {
      req.resume();
      reply(400, 'The key is 52 z-base-32 characters of an Ed25519 public key\n');
      return true;
    }
    this.#sweep();
    if (!isPut) {
      req.resume();
      this.#stats.lookups++;
      const e = this.#live(keyText);
      if (e === undefined) {
        reply(404, 'Not Found\n');
        return true;
      }
      this.#stats.hits++;
      reply(200, e.body);
      return true;
    }
    void this.#readBody(req).then(
      (body) => {
        try {
          reply(this.#put(keyText, key, body));
        } catch (err) {
          if (err instanceof RequestError) reply(err.status, `${err.message}\n`);
          else reply(500, 'Internal Server Error\n');
        }
      },
      (err: unknown) => {
        const status = err instanceof RequestError ? err.status : 400;
        reply(status, `${(err as Error).message}\n`);
        if (status === 413 || status === 408) req.socket.destroySoon();
      },
    );
    return true;
  }

  #readBody(req: IncomingMessage): Promise<Uint8Array> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > MAX_PKARR_BODY_BYTES) {
      req.resume();
      return Promise.reject(new RequestError(413, 'Payload Too Large'));
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
      const timer = setTimeout(() => finish(new RequestError(408, 'Request Timeout')), this.#o.bodyTimeoutMs);
      timer.unref?.();
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_PKARR_BODY_BYTES) finish(new RequestError(413, 'Payload Too Large'));
        else chunks.push(chunk);
      });
      req.on('end', () => finish(undefined, new Uint8Array(Buffer.concat(chunks))));
      req.on('error', (err) => finish(err));
      req.on('aborted', () => finish(new RequestError(400, 'aborted')));
    });
  }

  #put(keyText: string, key: PublicKey, body: Uint8Array): number {
    let packet;
    try {
      packet = verifyPacket(key, body);
    } catch (err) {
      throw new RequestError(400, (err as Error).message);
    }
    const nowMs = this.#now();
    if (packet.timestampUs > BigInt(nowMs) * 1000n + PKARR_MAX_FUTURE_US) throw new RequestError(400, 'Timestamp too far in the future');
    const existing = this.#live(keyText);
    if (existing !== undefined) {
      // pkarr relays: the newest packet wins; an older one is a conflict.
      if (packet.timestampUs < existing.timestampUs) throw new RequestError(409, 'Conflict: a newer packet is held');
      if (packet.timestampUs === existing.timestampUs) {
        if (!equalBytes(packet.body, existing.body)) throw new RequestError(409, 'Conflict: another packet with this timestamp is held');
      }
      this.#records.delete(keyText);
    } else if (this.#records.size >= this.#o.maxRecords) {
      this.#sweep(true);
      // Still full: the least recently published record (first in the map) makes room.
      while (this.#records.size >= this.#o.maxRecords) {
        this.#records.delete(this.#records.keys().next().value!);
        this.#stats.evicted++;
      }
    }
    this.#records.set(keyText, { timestampUs: packet.timestampUs, body: packet.body, expiresAt: nowMs + this.#o.recordTtlMs });
    this.#stats.published++;
    return 204;
  }
}
