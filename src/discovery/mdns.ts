/**
 * mDNS on the LAN as iroh announces it (swarm-discovery, used by iroh 0.95's and
 * `iroh-mdns-address-lookup`'s mDNS; pairing-transfer.md C, iroh-wire.md §6.1), over
 * `node:dgram`, IPv4 (224.0.0.251) and IPv6 (ff02::fb) multicast on port 5353, every interface.
 *
 * - Service `_irohv1._udp.local`; instance = lowercase RFC 4648 base32 (no padding) of the
 *   EndpointId (52 characters).
 * - Query: PTR `_irohv1._udp.local`.
 * - Answer: authoritative, id 0, no PTR: `SRV <inst>._irohv1._udp.local → <inst>-<port>.local`
 *   (one per port), `TXT` under the same name with `relay=` and `user-data=`; `A`/`AAAA` for
 *   each target in the additionals. Every TTL is 0. An answer without A/AAAA is dropped.
 * - Cadence: swarm-discovery's interactive setting, τ = 0.7 s (a query every τ while
 *   something is being looked for or just after start / an interface change, otherwise every
 *   10 τ), answers to queries sent after a short random delay (RFC 6762 §6), and an
 *   unsolicited answer at start and whenever what we announce changes.
 * - Hostile input: every packet is decoded by the bounded codec inside a guard (DecodeError
 *   and anything else dropped and counted, never thrown out of the socket handler), packets
 *   beyond a rate per socket are dropped, the peers remembered are bounded, and a peer not
 *   heard for 30 s is forgotten.
 *
 * @module
 */
import dgram from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import { PublicKey } from '../identity/keys.ts';
import { RelayUrl } from '../identity/relay-url.ts';
import { SocketAddr } from '../identity/socket-addr.ts';
import { BASE32_RFC4648_LOWER, decodeBase32, encodeBase32 } from '../util/base32.ts';
import { Emitter, type Listener, type ListenOptions } from '../util/emitter.ts';
import { CLASS_IN, decodeDnsMessage, encodeDnsMessage, FLAG_AUTHORITATIVE, FLAG_RESPONSE, sameName, txt, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, TYPE_TXT, type DnsMessage, type DnsRecord } from './dns.ts';
import { MAX_MDNS_ADDRS_PER_PEER, MAX_MDNS_PEERS, MAX_USER_DATA_BYTES, MDNS_MAX_PACKETS_PER_S, MDNS_PEER_EXPIRY_MS } from './limits.ts';
import type { AddressLookup } from './lookup.ts';
import { parseInfoTxt, type EndpointInfo } from './pkarr.ts';

export const MDNS_SERVICE = '_irohv1._udp.local';
export const MDNS_PORT = 5353;
export const MDNS_V4_GROUP = '224.0.0.251';
export const MDNS_V6_GROUP = 'ff02::fb';
/** swarm-discovery's τ for `new_interactive` (ms). */
export const MDNS_TAU_MS = 700;
/** How often interfaces are re-read (ms). */
const INTERFACE_POLL_MS = 3_000;
/** Queries every τ for this long after start, an interface change or a lookup (ms). */
const EAGER_MS = 5_000;

/** The instance name of an id: lowercase RFC 4648 base32, unpadded (52 characters). */
export function mdnsInstance(id: PublicKey): string {
  return encodeBase32(id.bytes, BASE32_RFC4648_LOWER);
}

/** The query iroh sends. */
export function encodeMdnsQuery(): Uint8Array {
  return encodeDnsMessage({ id: 0, flags: 0, questions: [{ name: MDNS_SERVICE, type: TYPE_PTR, class: CLASS_IN }] });
}

/** What one announcement holds. */
export interface MdnsAnnouncement {
  readonly id: PublicKey;
  /** Addresses with their ports (the SRV records group them by port). */
  readonly addrs: readonly SocketAddr[];
  readonly relay?: RelayUrl | undefined;
  readonly userData?: string | undefined;
}

/** The answer iroh sends for `a` (see the module comment for the exact shape). */
export function encodeMdnsAnswer(a: MdnsAnnouncement): Uint8Array {
  const inst = mdnsInstance(a.id);
  const name = `${inst}.${MDNS_SERVICE}`;
  const byPort = new Map<number, SocketAddr[]>();
  for (const addr of a.addrs) {
    const list = byPort.get(addr.port) ?? [];
    list.push(addr);
    byPort.set(addr.port, list);
  }
  const answers: DnsRecord[] = [];
  const additionals: DnsRecord[] = [];
  for (const [port, list] of byPort) {
    const target = `${inst}-${port}.local`;
    answers.push({ name, class: CLASS_IN, ttl: 0, data: { type: TYPE_SRV, priority: 0, weight: 0, port, target } });
    for (const addr of list) additionals.push({ name: target, class: CLASS_IN, ttl: 0, data: { type: addr.family === 4 ? TYPE_A : TYPE_AAAA, ip: Uint8Array.from(addr.ip) } });
  }
  const strings: Uint8Array[] = [];
  if (a.relay) strings.push(txt.encode(`relay=${a.relay.toString()}`));
  if (a.userData !== undefined) strings.push(txt.encode(`user-data=${a.userData}`));
  if (strings.length > 0) answers.push({ name, class: CLASS_IN, ttl: 0, data: { type: TYPE_TXT, strings } });
  return encodeDnsMessage({ id: 0, flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE, answers, additionals });
}

/** A peer as heard. */
export interface MdnsPeer {
  readonly id: PublicKey;
  readonly addrs: readonly SocketAddr[];
  readonly relay: RelayUrl | undefined;
  readonly userData: string | undefined;
}

/** The peers announced in one message (iroh's answer shape); peers without addresses are dropped. */
export function parseMdnsAnswer(msg: DnsMessage): MdnsPeer[] {
  if ((msg.flags & FLAG_RESPONSE) === 0) return [];
  const records = [...msg.answers, ...msg.additionals];
  const suffix = `.${MDNS_SERVICE}`;
  const peers = new Map<string, { id: PublicKey; srv: { port: number; target: string }[]; txt: string[] }>();
  for (const r of msg.answers) {
    if (r.name.length <= suffix.length || !sameName(r.name.slice(-suffix.length), suffix)) continue;
    const inst = r.name.slice(0, -suffix.length).toLowerCase();
    if (inst.length !== 52 || inst.includes('.')) continue;
    let id: PublicKey;
    try {
      id = PublicKey.fromBytes(decodeBase32(inst, BASE32_RFC4648_LOWER));
    } catch {
      continue;
    }
    const p = peers.get(inst) ?? { id, srv: [], txt: [] };
    peers.set(inst, p);
    if (r.data.type === TYPE_SRV && 'target' in r.data) p.srv.push({ port: r.data.port, target: r.data.target });
    else if (r.data.type === TYPE_TXT && 'strings' in r.data) for (const s of r.data.strings) p.txt.push(txt.decode(s));
  }
  const out: MdnsPeer[] = [];
  for (const p of peers.values()) {
    const addrs: SocketAddr[] = [];
    for (const s of p.srv) {
      for (const r of records) {
        if (addrs.length >= MAX_MDNS_ADDRS_PER_PEER) break;
        if (!sameName(r.name, s.target) || !('ip' in r.data)) continue;
        try {
          addrs.push(SocketAddr.fromParts(r.data.ip, s.port));
        } catch {
          // not an address
        }
      }
    }
    if (addrs.length === 0) continue;
    const info = parseInfoTxt(p.id, p.txt);
    out.push({ id: p.id, addrs, relay: info.relayUrls[0], userData: info.userData });
  }
  return out;
}

export type MdnsEvents = {
  /** A peer was heard (every time). */
  peer: MdnsPeer & { readonly first: boolean };
  /** A peer was not heard for the expiry time. */
  expired: { readonly id: PublicKey };
};

export interface MdnsOptions {
  /** Our id (never reported as a peer). */
  readonly id: PublicKey;
  /** The UDP ports our QUIC sockets listen on, by family (what the SRV records carry). */
  readonly ports: () => { v4?: number | undefined; v6?: number | undefined };
  /** mDNS port (default 5353; tests may use another). */
  readonly port?: number;
  /** Forget a silent peer after this long (ms, default 30 s). */
  readonly expiryMs?: number;
  /** Told about socket problems (mDNS keeps going on what works). */
  readonly onError?: (err: unknown) => void;
}

interface Socket {
  readonly family: 4 | 6;
  readonly sock: dgram.Socket;
  /** Interfaces joined: IPv4 address, or IPv6 `::%name`. */
  readonly joined: Set<string>;
  budget: number;
  budgetAt: number;
}

interface Known extends MdnsPeer {
  lastSeen: number;
}

/** mDNS discovery (iroh's format) as an {@link AddressLookup}. */
export class MdnsDiscovery implements AddressLookup {
  readonly name = 'mdns';
  readonly #o: MdnsOptions;
  readonly #sockets: Socket[] = [];
  readonly #peers = new Map<string, Known>();
  readonly #events = new Emitter<MdnsEvents>();
  #relay: RelayUrl | undefined;
  #userData: string | undefined;
  #timers: ReturnType<typeof setTimeout>[] = [];
  #queryTimer: ReturnType<typeof setTimeout> | undefined;
  #eagerUntil = 0;
  #closed = false;
  #answerPending = false;
  /** Lookups waiting for peers, woken when mDNS closes. */
  readonly #waiters = new Set<() => void>();
  #lastAnswer = '';
  /** Packets dropped: undecodable, over the rate, or from ourselves. */
  readonly stats = { received: 0, malformed: 0, rateLimited: 0, handlerErrors: 0, sent: 0 };

  private constructor(options: MdnsOptions) {
    this.#o = options;
  }

  /** Open the sockets (those that can be opened) and start announcing and querying. */
  static async start(options: MdnsOptions): Promise<MdnsDiscovery> {
    const m = new MdnsDiscovery(options);
    await m.#open(4);
    await m.#open(6);
    if (m.#sockets.length === 0) throw new Error('mDNS: no socket could be opened on port 5353');
    m.#joinAll();
    const poll = setInterval(() => m.#guard(() => m.#joinAll()), INTERFACE_POLL_MS);
    poll.unref();
    m.#timers.push(poll as unknown as ReturnType<typeof setTimeout>);
    const sweep = setInterval(() => m.#guard(() => m.#sweep()), 1000);
    sweep.unref();
    m.#timers.push(sweep as unknown as ReturnType<typeof setTimeout>);
    m.#eager();
    m.#announce();
    return m;
  }

  on<K extends keyof MdnsEvents>(type: K, listener: Listener<MdnsEvents[K]>, options: ListenOptions = {}): () => void {
    return this.#events.on(type, listener, options);
  }

  /** The peers heard recently. */
  peers(): MdnsPeer[] {
    return [...this.#peers.values()];
  }

  #guard(f: () => void): void {
    try {
      f();
    } catch (err) {
      this.stats.handlerErrors++;
      this.#o.onError?.(err);
    }
  }

  async #open(family: 4 | 6): Promise<void> {
    const sock = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', reuseAddr: true, ...(family === 6 ? { ipv6Only: true } : {}) });
    const s: Socket = { family, sock, joined: new Set(), budget: MDNS_MAX_PACKETS_PER_S, budgetAt: Date.now() };
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind({ port: this.#o.port ?? MDNS_PORT, address: family === 4 ? '0.0.0.0' : '::', exclusive: false }, () => {
          sock.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      sock.close();
      this.#o.onError?.(err);
      return;
    }
    sock.on('error', (err) => this.#o.onError?.(err));
    try {
      sock.setMulticastTTL(255);
      sock.setMulticastLoopback(true);
    } catch {
      // not fatal
    }
    sock.on('message', (msg, rinfo) => this.#guard(() => this.#onPacket(s, msg, rinfo)));
    this.#sockets.push(s);
  }

  /** Join the group on every interface (new ones as they appear); re-query after a change. */
  #joinAll(): void {
    let changed = false;
    const ifaces = networkInterfaces();
    for (const s of this.#sockets) {
      const want = new Set<string>();
      for (const [name, list] of Object.entries(ifaces)) {
        for (const i of list ?? []) {
          if (s.family === 4 && i.family === 'IPv4' && !i.internal) want.add(i.address);
          if (s.family === 6 && i.family === 'IPv6' && !i.internal && i.scopeid) want.add(`::%${name}`);
        }
      }
      for (const iface of want) {
        if (s.joined.has(iface)) continue;
        try {
          s.sock.addMembership(s.family === 4 ? MDNS_V4_GROUP : MDNS_V6_GROUP, iface);
        } catch (err) {
          // EADDRINUSE: joined already through another address of that interface.
          if ((err as { code?: string }).code !== 'EADDRINUSE') this.#o.onError?.(err);
        }
        s.joined.add(iface);
        changed = true;
      }
      for (const iface of [...s.joined]) {
        if (want.has(iface)) continue;
        s.joined.delete(iface);
        try {
          s.sock.dropMembership(s.family === 4 ? MDNS_V4_GROUP : MDNS_V6_GROUP, iface);
        } catch {
          // the interface is gone already
        }
        changed = true;
      }
    }
    if (changed && this.#timers.length > 0) {
      this.#lastAnswer = '';
      this.#eager();
      this.#announce();
    }
  }

  #send(bytes: Uint8Array): void {
    for (const s of this.#sockets) {
      for (const iface of s.joined) {
        try {
          s.sock.setMulticastInterface(iface);
          s.sock.send(bytes, this.#o.port ?? MDNS_PORT, s.family === 4 ? MDNS_V4_GROUP : `${MDNS_V6_GROUP}%${iface.slice(3)}`);
          this.stats.sent++;
        } catch (err) {
          this.#o.onError?.(err);
        }
      }
    }
  }

  /** Query every τ for a while. */
  #eager(): void {
    this.#eagerUntil = Date.now() + EAGER_MS;
    if (this.#queryTimer === undefined) this.#query();
  }

  #query(): void {
    clearTimeout(this.#queryTimer);
    if (this.#closed) return;
    this.#send(encodeMdnsQuery());
    const next = Date.now() < this.#eagerUntil ? MDNS_TAU_MS : 10 * MDNS_TAU_MS;
    this.#queryTimer = setTimeout(() => this.#guard(() => this.#query()), next);
    this.#queryTimer.unref();
  }

  /** Our addresses for the SRV/A/AAAA records: every interface address with that family's port. */
  #ourAddrs(): SocketAddr[] {
    const ports = this.#o.ports();
    const out: SocketAddr[] = [];
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) {
        if (i.internal) continue;
        const port = i.family === 'IPv4' ? ports.v4 : ports.v6;
        if (port === undefined || port === 0) continue;
        // Link-local IPv6 needs a scope a peer cannot know from the answer.
        if (i.family === 'IPv6' && i.scopeid) continue;
        try {
          out.push(SocketAddr.parse(i.family === 'IPv4' ? `${i.address}:${port}` : `[${i.address}]:${port}`));
        } catch {
          // skipped
        }
      }
    }
    return out.slice(0, MAX_MDNS_ADDRS_PER_PEER);
  }

  #answerBytes(): Uint8Array | undefined {
    const addrs = this.#ourAddrs();
    if (addrs.length === 0) return undefined;
    return encodeMdnsAnswer({ id: this.#o.id, addrs, relay: this.#relay, userData: this.#userData });
  }

  /** An unsolicited answer (start, change). */
  #announce(): void {
    const bytes = this.#answerBytes();
    if (bytes === undefined || this.#closed) return;
    this.#lastAnswer = Buffer.from(bytes).toString('base64');
    this.#send(bytes);
  }

  /** Answer a query after 20–120 ms (RFC 6762 §6), once for queries arriving meanwhile. */
  #scheduleAnswer(): void {
    if (this.#answerPending || this.#closed) return;
    this.#answerPending = true;
    const t = setTimeout(
      () =>
        this.#guard(() => {
          this.#answerPending = false;
          this.#announce();
        }),
      20 + Math.floor(Math.random() * 100),
    );
    t.unref();
  }

  #onPacket(s: Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const now = Date.now();
    // Token bucket per socket: a flood is dropped before it is decoded.
    s.budget = Math.min(MDNS_MAX_PACKETS_PER_S, s.budget + ((now - s.budgetAt) * MDNS_MAX_PACKETS_PER_S) / 1000);
    s.budgetAt = now;
    if (s.budget < 1) {
      this.stats.rateLimited++;
      return;
    }
    s.budget -= 1;
    this.stats.received++;
    void rinfo;
    let m: DnsMessage;
    try {
      m = decodeDnsMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
    } catch {
      this.stats.malformed++;
      return;
    }
    if ((m.flags & FLAG_RESPONSE) === 0) {
      if (m.questions.some((q) => (q.type === TYPE_PTR || q.type === 255) && sameName(q.name, MDNS_SERVICE))) this.#scheduleAnswer();
      return;
    }
    for (const p of parseMdnsAnswer(m)) this.#heard(p, now);
  }

  #heard(p: MdnsPeer, now: number): void {
    if (p.id.equals(this.#o.id)) return;
    const key = p.id.toString();
    const old = this.#peers.get(key);
    if (old === undefined && this.#peers.size >= MAX_MDNS_PEERS) {
      // Full: the peer heard longest ago makes room.
      let oldest: Known | undefined;
      for (const k of this.#peers.values()) if (oldest === undefined || k.lastSeen < oldest.lastSeen) oldest = k;
      if (oldest) {
        this.#peers.delete(oldest.id.toString());
        this.#events.emit('expired', { id: oldest.id });
      }
    }
    const userData = p.userData !== undefined && p.userData.length <= MAX_USER_DATA_BYTES ? p.userData : undefined;
    this.#peers.delete(key);
    this.#peers.set(key, { ...p, userData, lastSeen: now });
    this.#events.emit('peer', { ...p, userData, first: old === undefined });
  }

  #sweep(): void {
    const now = Date.now();
    const expiry = this.#o.expiryMs ?? MDNS_PEER_EXPIRY_MS;
    for (const [key, k] of this.#peers) {
      if (now - k.lastSeen < expiry) continue;
      this.#peers.delete(key);
      this.#events.emit('expired', { id: k.id });
    }
  }

  // ------------------------------------------------------------------ AddressLookup

  /** Our relay / user-data changed: announce at once. */
  publish(info: EndpointInfo): void {
    this.#relay = info.relayUrls[0];
    this.#userData = info.userData;
    const bytes = this.#answerBytes();
    if (bytes !== undefined && Buffer.from(bytes).toString('base64') !== this.#lastAnswer) this.#announce();
  }

  async resolve(id: PublicKey, signal: AbortSignal): Promise<EndpointAddr | undefined> {
    const toAddr = (p: MdnsPeer): EndpointAddr => EndpointAddr.from({ id: p.id, directAddresses: [...p.addrs], relayUrls: p.relay ? [p.relay] : [] });
    const known = this.#peers.get(id.toString());
    if (known) return toAddr(known);
    if (signal.aborted || this.#closed) return undefined;
    this.#eager();
    return new Promise((resolve) => {
      const done = (v: EndpointAddr | undefined): void => {
        off();
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const onAbort = (): void => done(undefined);
      const off0 = this.on('peer', (p) => {
        if (p.id.equals(id)) done(toAddr(p));
      });
      const waiter = (): void => done(undefined);
      this.#waiters.add(waiter);
      const off = (): void => {
        off0();
        this.#waiters.delete(waiter);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Peers announcing `userData`, as heard (those known first), until `signal` aborts. */
  async *withUserData(userData: string, signal: AbortSignal): AsyncGenerator<EndpointAddr> {
    const queue: MdnsPeer[] = this.peers().filter((p) => p.userData === userData);
    let wake: (() => void) | undefined;
    const off = this.on('peer', (p) => {
      if (p.userData !== userData) return;
      queue.push(p);
      wake?.();
    });
    const onAbort = (): void => wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    this.#eager();
    try {
      while (!signal.aborted && !this.#closed) {
        const p = queue.shift();
        if (p) {
          yield EndpointAddr.from({ id: p.id, directAddresses: [...p.addrs], relayUrls: p.relay ? [p.relay] : [] });
          continue;
        }
        await new Promise<void>((r) => {
          wake = r;
          this.#waiters.add(r);
        });
        if (wake) this.#waiters.delete(wake);
        wake = undefined;
      }
    } finally {
      off();
      signal.removeEventListener('abort', onAbort);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#queryTimer);
    for (const t of this.#timers) clearInterval(t);
    for (const s of this.#sockets) {
      try {
        s.sock.close();
      } catch {
        // closed
      }
    }
    this.#sockets.length = 0;
    for (const w of [...this.#waiters]) w();
    this.#waiters.clear();
  }
}
