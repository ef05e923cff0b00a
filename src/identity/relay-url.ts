/**
 * Relay URLs, normalised exactly as iroh's `RelayUrl` (a WHATWG-parsed `url::Url`):
 * scheme and host lower-cased, default port dropped, empty path becomes `/`, a trailing dot
 * on the host kept (`shared/docs/iroh-wire.md` §5.5). Node's `URL` implements the same
 * standard. Two relay URLs are the same relay exactly when their normalised strings match.
 *
 * @module
 */
import { DecodeError } from '../util/errors.ts';
import { MAX_RELAY_URL_BYTES } from './limits.ts';

/** A parsed, normalised relay URL. */
export class RelayUrl {
  readonly #href: string;

  private constructor(href: string) {
    this.#href = href;
  }

  /**
   * Parse and normalise.
   *
   * @throws {DecodeError} if `text` is not an absolute URL or is longer than the limit
   */
  static parse(text: string | URL): RelayUrl {
    const input = text instanceof URL ? text.href : text;
    if (typeof input !== 'string') throw new TypeError('Expected a string or URL');
    if (input.length > MAX_RELAY_URL_BYTES) throw new DecodeError(`Cannot parse relay URL: longer than ${MAX_RELAY_URL_BYTES} characters`);
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      throw new DecodeError(`Cannot parse relay URL "${input.slice(0, 200)}"`);
    }
    if (url.href.length > MAX_RELAY_URL_BYTES) throw new DecodeError(`Cannot parse relay URL: longer than ${MAX_RELAY_URL_BYTES} characters`);
    return new RelayUrl(url.href);
  }

  /** A fresh WHATWG `URL` object for this relay. */
  toURL(): URL {
    return new URL(this.#href);
  }

  /** The normalised form, e.g. `http://127.0.0.1:3340/`. */
  toString(): string {
    return this.#href;
  }

  toJSON(): string {
    return this.#href;
  }

  equals(other: RelayUrl): boolean {
    return this.#href === other.#href;
  }

  /** Rust's `Ord` for `Url`: byte-wise comparison of the serialisation (ASCII after WHATWG). */
  static compare(a: RelayUrl, b: RelayUrl): number {
    return a.#href < b.#href ? -1 : a.#href > b.#href ? 1 : 0;
  }
}
