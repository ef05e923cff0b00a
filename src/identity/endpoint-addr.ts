/**
 * `EndpointAddr`: an endpoint id plus the addresses where it may be reached — relay URLs,
 * direct IP socket addresses, and (opaque, carried through) custom transport addresses.
 *
 * The postcard encoding is iroh-base 1.0.2's (`shared/docs/iroh-wire.md` §5.3):
 * `id[32] ‖ varint(count) ‖ TransportAddr*`, with `TransportAddr` = `0 ‖ string(url)` |
 * `1 ‖ (0 ‖ ip[4] | 1 ‖ ip[16]) ‖ varint(port)` | `2 ‖ varint(id u64) ‖ bytes`.
 * Addresses are a set: encoded in Rust's `Ord` order (relay < ip < custom), duplicates
 * merged, so the bytes equal iroh's for the same set.
 *
 * @module
 */
import { PublicKey, KEY_LENGTH } from './keys.ts';
import { RelayUrl } from './relay-url.ts';
import { SocketAddr } from './socket-addr.ts';
import { MAX_CUSTOM_ADDR_BYTES, MAX_ENDPOINT_ADDRS, MAX_RELAY_URL_BYTES } from './limits.ts';
import { PostcardReader, PostcardWriter } from '../util/postcard.ts';
import { compareBytes, equalBytes, toHex } from '../util/bytes.ts';
import { DecodeError } from '../util/errors.ts';

/** A custom-transport address: a transport id and opaque bytes (iroh `CustomAddr`). */
export interface CustomAddr {
  readonly id: bigint;
  readonly data: Uint8Array;
}

/** iroh 1.0.2 stores up to 30 bytes inline and longer payloads on the heap; the form is on the wire. */
const CUSTOM_INLINE_CAPACITY = 30;

/** Rust's derived `Ord` for `CustomAddr { id, data: Inline{size, data[30]} | Heap(bytes) }`. */
function compareCustom(a: CustomAddr, b: CustomAddr): number {
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  const aInline = a.data.length <= CUSTOM_INLINE_CAPACITY;
  const bInline = b.data.length <= CUSTOM_INLINE_CAPACITY;
  if (aInline !== bInline) return aInline ? -1 : 1;
  if (aInline) {
    if (a.data.length !== b.data.length) return a.data.length - b.data.length;
    return compareBytes(a.data, b.data);
  }
  return compareBytes(a.data, b.data);
}

function sortedUnique<T>(items: readonly T[], compare: (a: T, b: T) => number): T[] {
  const sorted = [...items].sort(compare);
  return sorted.filter((item, i) => i === 0 || compare(sorted[i - 1]!, item) !== 0);
}

/** Input accepted by {@link EndpointAddr.from}. */
export interface EndpointAddrInit {
  id: PublicKey | string;
  relayUrls?: readonly (RelayUrl | string)[];
  directAddresses?: readonly (SocketAddr | string)[];
  customAddresses?: readonly CustomAddr[];
}

/** An endpoint id with the addresses it may be reached at. Immutable. */
export class EndpointAddr {
  readonly id: PublicKey;
  /** Sorted, without duplicates. */
  readonly relayUrls: readonly RelayUrl[];
  /** Sorted (IPv4 first), without duplicates. */
  readonly directAddresses: readonly SocketAddr[];
  /** Sorted, without duplicates; carried through, not used by sdnet. */
  readonly customAddresses: readonly CustomAddr[];

  private constructor(id: PublicKey, relayUrls: RelayUrl[], direct: SocketAddr[], custom: CustomAddr[]) {
    this.id = id;
    this.relayUrls = Object.freeze(sortedUnique(relayUrls, RelayUrl.compare));
    this.directAddresses = Object.freeze(sortedUnique(direct, SocketAddr.compare));
    this.customAddresses = Object.freeze(sortedUnique(custom, compareCustom));
    const total = this.relayUrls.length + this.directAddresses.length + this.customAddresses.length;
    if (total > MAX_ENDPOINT_ADDRS) throw new RangeError(`An EndpointAddr holds at most ${MAX_ENDPOINT_ADDRS} addresses`);
  }

  /** Build from ids, URLs and addresses given as objects or strings. */
  static from(init: EndpointAddrInit): EndpointAddr {
    const id = typeof init.id === 'string' ? PublicKey.fromString(init.id) : init.id;
    const relays = (init.relayUrls ?? []).map((u) => (u instanceof RelayUrl ? u : RelayUrl.parse(u)));
    const direct = (init.directAddresses ?? []).map((a) => (a instanceof SocketAddr ? a : SocketAddr.parse(a)));
    const custom = (init.customAddresses ?? []).map((c) => {
      if (c.id < 0n || c.id > 0xffffffffffffffffn) throw new RangeError('Custom address id must be a u64');
      if (c.data.length > MAX_CUSTOM_ADDR_BYTES) throw new RangeError(`Custom address data must be at most ${MAX_CUSTOM_ADDR_BYTES} bytes`);
      return { id: c.id, data: c.data.slice() };
    });
    return new EndpointAddr(id, relays, direct, custom);
  }

  /** True if no address is known (only the id). */
  get isEmpty(): boolean {
    return this.relayUrls.length === 0 && this.directAddresses.length === 0 && this.customAddresses.length === 0;
  }

  /** Write the postcard encoding into `w`. @internal (tickets embed it) */
  encodeInto(w: PostcardWriter): void {
    w.fixed(this.id.bytes);
    w.varint(this.relayUrls.length + this.directAddresses.length + this.customAddresses.length);
    for (const url of this.relayUrls) w.varint(0).string(url.toString());
    for (const addr of this.directAddresses) {
      w.varint(1).varint(addr.family === 4 ? 0 : 1).fixed(addr.ip).varint(addr.port);
    }
    for (const c of this.customAddresses) {
      w.varint(2).varint(c.id);
      if (c.data.length <= CUSTOM_INLINE_CAPACITY) {
        const inline = new Uint8Array(CUSTOM_INLINE_CAPACITY);
        inline.set(c.data);
        w.varint(0).u8(c.data.length).fixed(inline);
      } else {
        w.varint(1).byteString(c.data);
      }
    }
  }

  /** The postcard encoding. */
  toBytes(): Uint8Array {
    const w = new PostcardWriter();
    this.encodeInto(w);
    return w.finish();
  }

  /** Read one postcard-encoded EndpointAddr from `r`. @internal (tickets embed it) */
  static decodeFrom(r: PostcardReader): EndpointAddr {
    const id = PublicKey.fromBytes(r.fixed(KEY_LENGTH));
    // The smallest element is a relay URL of length 0: 2 bytes.
    const count = r.sequenceLength(MAX_ENDPOINT_ADDRS, 2, 'EndpointAddr');
    const relays: RelayUrl[] = [];
    const direct: SocketAddr[] = [];
    const custom: CustomAddr[] = [];
    for (let i = 0; i < count; i++) {
      const variant = r.varint(32);
      if (variant === 0) {
        relays.push(RelayUrl.parse(r.string(MAX_RELAY_URL_BYTES, 'relay URL')));
      } else if (variant === 1) {
        const family = r.varint(32);
        if (family !== 0 && family !== 1) throw new DecodeError(`Cannot decode socket address: unknown family ${family}`);
        const ip = r.fixed(family === 0 ? 4 : 16);
        direct.push(SocketAddr.fromParts(ip, r.varint(16)));
      } else if (variant === 2) {
        const customId = r.varintU64();
        const form = r.varint(32);
        let data: Uint8Array;
        if (form === 0) {
          const size = r.u8();
          const inline = r.fixed(CUSTOM_INLINE_CAPACITY);
          if (size > CUSTOM_INLINE_CAPACITY) throw new DecodeError(`Cannot decode custom address: inline size ${size} exceeds 30`);
          data = inline.slice(0, size);
        } else if (form === 1) {
          data = r.byteString(MAX_CUSTOM_ADDR_BYTES, 'custom address');
        } else {
          throw new DecodeError(`Cannot decode custom address: unknown form ${form}`);
        }
        custom.push({ id: customId, data });
      } else {
        throw new DecodeError(`Cannot decode EndpointAddr: unknown address kind ${variant}`);
      }
    }
    return new EndpointAddr(id, relays, direct, custom);
  }

  /**
   * Decode the postcard encoding; the whole input must be consumed.
   *
   * @throws {DecodeError} on any malformed input
   */
  static fromBytes(bytes: Uint8Array): EndpointAddr {
    const r = new PostcardReader(bytes);
    const addr = EndpointAddr.decodeFrom(r);
    r.finish('EndpointAddr');
    return addr;
  }

  /** Same id and same address sets. */
  equals(other: EndpointAddr): boolean {
    return equalBytes(this.toBytes(), other.toBytes());
  }

  /** `{ id, relayUrls, directAddresses }` with strings (plus `customAddresses` when present). */
  toJSON(): { id: string; relayUrls: string[]; directAddresses: string[]; customAddresses?: string[] } {
    const json: { id: string; relayUrls: string[]; directAddresses: string[]; customAddresses?: string[] } = {
      id: this.id.toString(),
      relayUrls: this.relayUrls.map(String),
      directAddresses: this.directAddresses.map(String),
    };
    // iroh's CustomAddr display: `<hex id>_<hex data>`.
    if (this.customAddresses.length > 0) json.customAddresses = this.customAddresses.map((c) => `${c.id.toString(16)}_${toHex(c.data)}`);
    return json;
  }
}
