/**
 * A bounded cache of validated public keys, as iroh-relay's `KeyCache`
 * (`shared/docs/iroh-wire.md` §1.6: "Public keys inside frames are validated as Ed25519
 * points"). Validating a point costs tens of microseconds; a relay connection sees the same
 * few keys in every datagram frame, so each is validated once.
 *
 * Least-recently-used entries are evicted past the capacity, so a peer that names thousands
 * of distinct keys cannot grow it.
 *
 * @module
 */
import { PublicKey } from '../../identity/keys.ts';
import { DecodeError } from '../../util/errors.ts';
import { KEY_CACHE_CAPACITY } from './limits.ts';

/**
 * A string that identifies 32 key bytes at `offset`, for use as a `Map` key (one UTF-16 unit
 * per byte; cheaper to build than hex).
 */
export function keyId(bytes: Uint8Array, offset = 0): string {
  return String.fromCharCode.apply(null, bytes.subarray(offset, offset + 32) as unknown as number[]);
}

/** An LRU map from key bytes to validated {@link PublicKey}s. */
export class KeyCache {
  readonly #capacity: number;
  readonly #keys = new Map<string, PublicKey>();

  constructor(capacity: number = KEY_CACHE_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('KeyCache capacity must be a positive integer');
    this.#capacity = capacity;
  }

  /** Number of cached keys. */
  get size(): number {
    return this.#keys.size;
  }

  /** Remember a key that is already validated (e.g. one that just authenticated). */
  insert(key: PublicKey): void {
    this.#put(keyId(key.bytes), key);
  }

  /**
   * The key in `bytes[offset .. offset + 32]`, validated.
   *
   * @throws {DecodeError} if fewer than 32 bytes remain or they are not a valid key
   */
  get(bytes: Uint8Array, offset = 0): PublicKey {
    if (bytes.length - offset < 32) throw new DecodeError('Cannot decode public key: input is truncated');
    const id = keyId(bytes, offset);
    const hit = this.#keys.get(id);
    if (hit !== undefined) {
      // Move to the most-recent end.
      this.#keys.delete(id);
      this.#keys.set(id, hit);
      return hit;
    }
    // A plain copy: PublicKey keeps what it is given, and a Buffer view would pin its source.
    const key = PublicKey.fromBytes(new Uint8Array(bytes.subarray(offset, offset + 32)));
    this.#put(id, key);
    return key;
  }

  #put(id: string, key: PublicKey): void {
    this.#keys.delete(id);
    this.#keys.set(id, key);
    if (this.#keys.size > this.#capacity) {
      const oldest = this.#keys.keys().next().value!;
      this.#keys.delete(oldest);
    }
  }
}
