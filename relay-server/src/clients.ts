/**
 * The relay's registry of authenticated clients by EndpointId (`shared/docs/iroh-wire.md`
 * §1.8, iroh `server/clients.rs`):
 *
 * - the newest connection of an EndpointId is **active**; older ones are kept **inactive**,
 *   told `Status(SameEndpointIdConnected)` (v1: `Health`) and receive nothing more; when the
 *   active one closes the most recent inactive one is promoted and told `Status(Healthy)`;
 * - the relay remembers which peers each endpoint sent to; when an endpoint's last connection
 *   closes those peers get `EndpointGone` (best effort);
 * - bounded: at most `maxInactive` older connections per id (the oldest is closed beyond
 *   that) and at most `maxSentTo` remembered peers per endpoint (oldest forgotten).
 *
 * @module
 */
import type { PublicKey } from '../../src/identity/keys.ts';
import { StatusCode } from '../../src/relay/protocol/frames.ts';

/** What the registry needs from a connection. */
export interface RegisteredConn {
  readonly publicKey: PublicKey;
  sendStatus(status: number): void;
  sendEndpointGone(endpointId: PublicKey): void;
  /** Close because too many newer connections of the same id exist. */
  evict(reason: string): void;
}

export interface EndpointEntry<C extends RegisteredConn> {
  readonly key: PublicKey;
  active: C;
  inactive: C[];
  /** Peers this endpoint sent to, by key id, in insertion order. */
  sentTo: Set<string>;
  /** Set when the entry left the registry (so cached references to it can tell). */
  removed: boolean;
}

export class ClientRegistry<C extends RegisteredConn> {
  readonly #entries = new Map<string, EndpointEntry<C>>();
  readonly #maxInactive: number;
  readonly #maxSentTo: number;
  #connections = 0;

  constructor(options: { maxInactive: number; maxSentTo: number }) {
    this.#maxInactive = options.maxInactive;
    this.#maxSentTo = options.maxSentTo;
  }

  /** Distinct EndpointIds connected. */
  get endpoints(): number {
    return this.#entries.size;
  }

  /** Registered connections, active and inactive. */
  get connections(): number {
    return this.#connections;
  }

  /** Entries in the `sentTo` sets together (for leak checks). */
  sentToSize(): number {
    let n = 0;
    for (const e of this.#entries.values()) n += e.sentTo.size;
    return n;
  }

  /** The entry of a key id, if connected. */
  get(keyId: string): EndpointEntry<C> | undefined {
    return this.#entries.get(keyId);
  }

  entries(): IterableIterator<EndpointEntry<C>> {
    return this.#entries.values();
  }

  /** Add a newly authenticated connection; it becomes the active one for its id. */
  register(keyId: string, conn: C): void {
    this.#connections++;
    const entry = this.#entries.get(keyId);
    if (entry === undefined) {
      this.#entries.set(keyId, { key: conn.publicKey, active: conn, inactive: [], sentTo: new Set(), removed: false });
      return;
    }
    const old = entry.active;
    entry.active = conn;
    // iroh-wire §1.8: the old connection is told and kept inactive.
    old.sendStatus(StatusCode.SameEndpointIdConnected);
    entry.inactive.push(old);
    while (entry.inactive.length > this.#maxInactive) {
      // Removed here, so its later unregister() finds it nowhere and counts nothing twice.
      const oldest = entry.inactive.shift()!;
      this.#connections--;
      oldest.evict('too many connections with the same endpoint id');
    }
  }

  /** Remove a connection (it closed). */
  unregister(keyId: string, conn: C): void {
    const entry = this.#entries.get(keyId);
    if (entry === undefined) return;
    if (entry.active !== conn) {
      const i = entry.inactive.indexOf(conn);
      if (i >= 0) {
        entry.inactive.splice(i, 1);
        this.#connections--;
      }
      return;
    }
    this.#connections--;
    const promoted = entry.inactive.pop();
    if (promoted !== undefined) {
      entry.active = promoted;
      promoted.sendStatus(StatusCode.Healthy);
      return;
    }
    this.#entries.delete(keyId);
    entry.removed = true;
    // iroh-wire §1.8: every peer it had sent to learns it is gone.
    for (const peerId of entry.sentTo) this.#entries.get(peerId)?.active.sendEndpointGone(entry.key);
  }

  /** Remember that `from` sent to `toKeyId`. */
  recordSentTo(from: EndpointEntry<C>, toKeyId: string): void {
    if (from.sentTo.has(toKeyId)) return;
    from.sentTo.add(toKeyId);
    if (from.sentTo.size > this.#maxSentTo) from.sentTo.delete(from.sentTo.values().next().value!);
  }
}
