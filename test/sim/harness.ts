/**
 * A simulated network for the sans-IO QUIC core: virtual time in microseconds, seeded
 * randomness, links with latency, loss, reordering, duplication, corruption, MTU limits and
 * blackholes. Deterministic for a given seed.
 */
import { QuicEndpoint, type QuicEndpointOptions } from '../../src/transport/quic/endpoint.ts';
import type { PathAddr } from '../../src/transport/quic/connection/types.ts';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';

/** xorshift128+ — small, fast, seedable. */
export class Rng {
  #s0: number;
  #s1: number;
  constructor(seed: number) {
    this.#s0 = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.#s1 = (seed * 0x85ebca6b) >>> 0 || 2;
    for (let i = 0; i < 8; i++) this.next();
  }
  /** Uniform in [0, 1). */
  next(): number {
    let s1 = this.#s0;
    const s0 = this.#s1;
    this.#s0 = s0;
    s1 ^= s1 << 23;
    s1 ^= s1 >>> 17;
    s1 ^= s0;
    s1 ^= s0 >>> 26;
    this.#s1 = s1 >>> 0;
    return ((this.#s0 + this.#s1) >>> 0) / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

export interface LinkConditions {
  /** One-way delay, µs. */
  latency: number;
  /** Random extra delay up to this many µs (reorders packets). */
  jitter: number;
  loss: number;
  duplicate: number;
  corrupt: number;
  /** Datagrams larger than this are dropped. */
  mtu: number;
  /** Drop everything during these [start, end) windows of virtual time (µs). */
  blackholes: [number, number][];
  /** Bytes per second (0 = unlimited); queued beyond `queue` bytes are dropped. */
  rate: number;
  queue: number;
}

export const GOOD_LINK: LinkConditions = { latency: 5_000, jitter: 0, loss: 0, duplicate: 0, corrupt: 0, mtu: 1500, blackholes: [], rate: 0, queue: 256 * 1024 };

interface InFlight {
  at: number;
  seq: number;
  to: SimNode;
  from: PathAddr;
  data: Uint8Array;
}

export class SimNode {
  readonly endpoint: QuicEndpoint;
  addr: PathAddr;
  constructor(endpoint: QuicEndpoint, addr: PathAddr) {
    this.endpoint = endpoint;
    this.addr = addr;
  }
}

/** Datagrams addressed to `relay|<node>` reach the node through the (simulated) relay. */
export const RELAY_PREFIX = 'relay|';

/** The relayed path to `name`, as the core sees it. */
export function relayPath(name: string): PathAddr {
  return { key: RELAY_PREFIX + name, relayed: true, host: 'relay' };
}

export class SimNetwork {
  now = 1_000_000;
  /** Datagrams handed to each directed link (`from>to`, relay links as `from>relay|to`), lost or not. */
  readonly sent = new Map<string, number>();
  /** Sees every datagram a node sends (before loss), e.g. to check sizes. */
  onSend: ((from: string, to: string, data: Uint8Array) => void) | undefined;
  readonly rng: Rng;
  readonly nodes = new Map<string, SimNode>();
  readonly #queue: InFlight[] = [];
  #seq = 0;
  readonly links = new Map<string, LinkConditions>();
  /** Busy-until time per directed link, for rate limiting. */
  readonly #busy = new Map<string, number>();
  delivered = 0;
  dropped = 0;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  /** A provider whose randomness is the simulation's, so runs are reproducible. */
  provider() {
    const rng = this.rng;
    return { ...nodeCryptoProvider, name: 'sim', randomBytes: (n: number) => rng.bytes(n) };
  }

  /** A node sending from `name`; `ip`/`port` are what its peers see as its UDP address (QUIC address discovery reports them). */
  addNode(name: string, options: Omit<QuicEndpointOptions, 'provider'>, udp?: { ip: Uint8Array; port: number }): SimNode {
    const node = new SimNode(new QuicEndpoint({ ...options, provider: this.provider() }), { key: name, ...udp });
    this.nodes.set(name, node);
    return node;
  }

  /**
   * The node's address changes (NAT rebinding): from now on it sends from `newName`, and
   * datagrams still addressed to the old name are lost.
   */
  rebind(name: string, newName: string, udp?: { ip: Uint8Array; port: number }): void {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    this.nodes.delete(name);
    node.addr = { key: newName, ...udp };
    this.nodes.set(newName, node);
    for (const [k, v] of [...this.links]) {
      const [a, b] = k.split('>');
      if (a === name) this.links.set(`${newName}>${b}`, v);
      if (b === name) this.links.set(`${a}>${newName}`, v);
    }
  }

  setLink(from: string, to: string, conditions: Partial<LinkConditions>): void {
    this.links.set(`${from}>${to}`, { ...GOOD_LINK, ...conditions });
  }

  #link(from: string, to: string): LinkConditions {
    return this.links.get(`${from}>${to}`) ?? GOOD_LINK;
  }

  #send(from: SimNode, toKey: string, data: Uint8Array): void {
    const relayed = toKey.startsWith(RELAY_PREFIX);
    const to = this.nodes.get(relayed ? toKey.slice(RELAY_PREFIX.length) : toKey);
    if (to === undefined) return;
    const linkKey = `${from.addr.key}>${toKey}`;
    this.sent.set(linkKey, (this.sent.get(linkKey) ?? 0) + 1);
    this.onSend?.(from.addr.key, toKey, data);
    const link = this.#link(from.addr.key, toKey);
    // Through the relay, the receiver sees the sender's relayed path.
    const source = relayed ? relayPath(from.addr.key) : from.addr;
    if (data.length > link.mtu || this.rng.next() < link.loss || link.blackholes.some(([s, e]) => this.now >= s && this.now < e)) {
      this.dropped++;
      return;
    }
    let departure = this.now;
    if (link.rate > 0) {
      const key = `${from.addr.key}>${toKey}`;
      const busy = Math.max(this.#busy.get(key) ?? 0, this.now);
      if ((busy - this.now) * (link.rate / 1e6) > link.queue) {
        this.dropped++;
        return;
      }
      departure = busy + (data.length / link.rate) * 1e6;
      this.#busy.set(key, departure);
    }
    const copies = this.rng.next() < link.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // Each delivery gets its own buffer: receivers own (and modify) what they are given.
      const bytes = data.slice();
      if (this.rng.next() < link.corrupt) {
        bytes[this.rng.int(bytes.length)]! ^= 1 + this.rng.int(255);
      }
      const at = departure + link.latency + (link.jitter > 0 ? this.rng.int(link.jitter) : 0);
      this.#queue.push({ at, seq: this.#seq++, to, from: source, data: bytes });
    }
  }

  /** Drain every node's output. */
  flush(): void {
    for (const node of this.nodes.values()) {
      for (let t = node.endpoint.pollTransmit(this.now); t; t = node.endpoint.pollTransmit(this.now)) this.#send(node, t.path.key, t.data);
    }
  }

  /** Advance to the next event (a delivery or a timer) and process it. Returns false when idle. */
  step(limit = Infinity): boolean {
    this.flush();
    let next = Infinity;
    for (const q of this.#queue) if (q.at < next) next = q.at;
    for (const node of this.nodes.values()) {
      const t = node.endpoint.pollTimeout();
      if (t !== undefined && t < next) next = t;
    }
    if (next === Infinity || next > limit) return false;
    this.now = Math.max(this.now, next);
    // Deliver everything due now, in arrival order.
    this.#queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
    while (this.#queue.length > 0 && this.#queue[0]!.at <= this.now) {
      const q = this.#queue.shift()!;
      this.delivered++;
      q.to.endpoint.handleDatagram(this.now, q.from, q.data);
    }
    for (const node of this.nodes.values()) {
      const t = node.endpoint.pollTimeout();
      if (t !== undefined && t <= this.now) node.endpoint.handleTimeout(this.now);
    }
    this.flush();
    return true;
  }

  /** Step until `cond()` holds; throws after `maxSteps` or `maxTime` µs of virtual time. */
  runUntil(cond: () => boolean, options: { maxSteps?: number; maxTime?: number; what?: string } = {}): void {
    const maxSteps = options.maxSteps ?? 5_000_000;
    const deadline = this.now + (options.maxTime ?? 120_000_000);
    for (let i = 0; i < maxSteps; i++) {
      if (cond()) return;
      if (!this.step(deadline)) {
        if (cond()) return;
        throw new Error(`simulation went idle before: ${options.what ?? 'condition'} (t=${this.now}µs)`);
      }
    }
    throw new Error(`simulation did not reach: ${options.what ?? 'condition'} within ${maxSteps} steps (t=${this.now}µs)`);
  }
}
