/**
 * The optional DNS server of `sdnet-relay` (as n0's iroh-dns-server serves): answers
 * `_iroh.<z32>.<origin>` TXT (and ANY) over UDP and TCP from the records published at the
 * relay's `/pkarr`, so iroh nodes configured with a DNS origin (iroh's `DnsAddressLookup`)
 * find endpoints published here. Names are answered as stored in the signed packet, with the
 * origin appended (iroh-wire §6.2); TTL as published (30 s).
 *
 * Bounded: queries above 512 bytes or with more than one question are refused (FORMERR),
 * a per-address-group rate limit drops UDP floods, TCP connections are capped, idle ones
 * closed after 5 s, and each carries at most 16 queries.
 *
 * @module
 */
import { nodeCryptoProvider } from '../../src/transport/crypto/node-provider.ts';
import dgram from 'node:dgram';
import net from 'node:net';
import { PublicKey } from '../../src/identity/keys.ts';
import { decodeDnsMessage, encodeDnsMessage, FLAG_AUTHORITATIVE, FLAG_RESPONSE, sameName, TYPE_ANY, TYPE_TXT, type DnsMessage, type DnsRecord } from '../../src/discovery/dns.ts';
import { IROH_TXT_LABEL, verifyPacket, z32 } from '../../src/discovery/pkarr.ts';
import type { PkarrRelay } from './pkarr.ts';

/** Largest query read (bytes; RFC 1035 §4.2.1's UDP size). */
const MAX_QUERY_BYTES = 512;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_REFUSED = 5;

export interface PkarrDnsOptions {
  /** The zone served, e.g. `dns.example.org` (records are `_iroh.<z32>.<origin>`). */
  readonly origin: string;
  readonly host?: string;
  /** UDP and TCP port (default 53; 0: any free one, the same for both when possible). */
  readonly port?: number;
  /** Queries per second per address group (default 50, burst 2×). `0`: unlimited. */
  readonly queriesPerSecond?: number;
  /** TCP connections at once (default 256). */
  readonly maxTcpConnections?: number;
}

interface Bucket {
  tokens: number;
  last: number;
}

export class PkarrDnsServer {
  readonly #o: PkarrDnsOptions;
  readonly #origin: string;
  readonly #pkarr: PkarrRelay;
  readonly #udp: dgram.Socket;
  readonly #tcp: net.Server;
  readonly #buckets = new Map<string, Bucket>();
  readonly stats = { queries: 0, answered: 0, nxdomain: 0, refused: 0, malformed: 0, rateLimited: 0 };
  port = 0;

  private constructor(o: PkarrDnsOptions, pkarr: PkarrRelay, udp: dgram.Socket, tcp: net.Server) {
    this.#o = o;
    this.#origin = o.origin.replace(/\.$/, '').toLowerCase();
    this.#pkarr = pkarr;
    this.#udp = udp;
    this.#tcp = tcp;
  }

  static async start(options: PkarrDnsOptions, pkarr: PkarrRelay): Promise<PkarrDnsServer> {
    const host = options.host ?? '0.0.0.0';
    const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(options.port ?? 53, host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const port = udp.address().port;
    const tcp = net.createServer();
    tcp.maxConnections = options.maxTcpConnections ?? 256;
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      udp.close();
      throw err;
    }
    const s = new PkarrDnsServer(options, pkarr, udp, tcp);
    s.port = port;
    udp.on('error', () => undefined);
    udp.on('message', (msg, rinfo) => {
      try {
        if (!s.#admit(rinfo.address)) {
          s.stats.rateLimited++;
          return;
        }
        const reply = s.answer(msg);
        if (reply) udp.send(reply, rinfo.port, rinfo.address);
      } catch {
        s.stats.malformed++;
      }
    });
    tcp.on('connection', (sock) => s.#onTcp(sock));
    return s;
  }

  #admit(ip: string): boolean {
    const rate = this.#o.queriesPerSecond ?? 50;
    if (rate === 0) return true;
    const key = net.isIPv6(ip) && !ip.startsWith('::ffff:') ? ip.split(':').slice(0, 4).join(':') : ip;
    const now = performance.now();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= 10_000) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: rate * 2, last: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(rate * 2, b.tokens + ((now - b.last) * rate) / 1000);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  #onTcp(sock: net.Socket): void {
    sock.on('error', () => undefined);
    sock.setTimeout(5_000, () => sock.destroy());
    let buf = Buffer.alloc(0);
    let served = 0;
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        // RFC 1035 §4.2.2: a 2-byte length prefix. Queries are small: a big one ends the connection.
        if (len > MAX_QUERY_BYTES || ++served > 16 || !this.#admit(sock.remoteAddress ?? '?')) {
          sock.destroy();
          return;
        }
        if (buf.length < 2 + len) return;
        const q = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        let reply: Uint8Array | undefined;
        try {
          reply = this.answer(q, 65_535);
        } catch {
          this.stats.malformed++;
        }
        if (reply === undefined) {
          sock.destroy();
          return;
        }
        const out = Buffer.alloc(2 + reply.length);
        out.writeUInt16BE(reply.length, 0);
        out.set(reply, 2);
        sock.write(out);
      }
      if (buf.length > MAX_QUERY_BYTES + 2) sock.destroy();
    });
  }

  /** The reply to one query (undefined: dropped). */
  answer(query: Uint8Array, maxBytes = 512): Uint8Array | undefined {
    this.stats.queries++;
    if (query.length > MAX_QUERY_BYTES || query.length < 12) {
      this.stats.malformed++;
      return undefined;
    }
    let m: DnsMessage;
    try {
      m = decodeDnsMessage(query);
    } catch {
      this.stats.malformed++;
      // FORMERR with the id, when there is one.
      return encodeDnsMessage({ id: (query[0]! << 8) | query[1]!, flags: FLAG_RESPONSE | RCODE_FORMERR });
    }
    if (m.flags & FLAG_RESPONSE) return undefined;
    const reply = (rcode: number, answers: DnsRecord[] = []): Uint8Array => {
      // Keep RD from the query; answer authoritatively for our zone.
      const flags = FLAG_RESPONSE | FLAG_AUTHORITATIVE | (m.flags & 0x0100) | rcode;
      let bytes = encodeDnsMessage({ id: m.id, flags, questions: m.questions, answers }, { maxBytes: 65_535 });
      if (bytes.length > maxBytes) bytes = encodeDnsMessage({ id: m.id, flags: flags | 0x0200, questions: m.questions });
      return bytes;
    };
    if (m.questions.length !== 1) {
      this.stats.refused++;
      return reply(RCODE_FORMERR);
    }
    const q = m.questions[0]!;
    const name = q.name.toLowerCase();
    const suffix = `.${this.#origin}`;
    if (!name.endsWith(suffix) && name !== this.#origin) {
      this.stats.refused++;
      return reply(RCODE_REFUSED);
    }
    const labels = name.slice(0, name.length - suffix.length).split('.');
    if (labels.length !== 2 || labels[0] !== IROH_TXT_LABEL) {
      this.stats.nxdomain++;
      return reply(RCODE_NXDOMAIN);
    }
    let key: PublicKey;
    try {
      key = PublicKey.fromZ32(labels[1]!);
    } catch {
      this.stats.nxdomain++;
      return reply(RCODE_NXDOMAIN);
    }
    const body = this.#pkarr.lookup(z32(key));
    if (body === undefined) {
      this.stats.nxdomain++;
      return reply(RCODE_NXDOMAIN);
    }
    if (q.type !== TYPE_TXT && q.type !== TYPE_ANY) return reply(0);
    const packet = verifyPacket(key, body, nodeCryptoProvider);
    const owner = `${IROH_TXT_LABEL}.${z32(key)}`;
    const answers = packet.message.answers.filter((r) => r.data.type === TYPE_TXT && sameName(r.name, owner)).map((r) => ({ ...r, name: q.name }));
    this.stats.answered++;
    return reply(0, answers);
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.#udp.close(() => r()));
    await new Promise<void>((r) => this.#tcp.close(() => r()));
  }
}
