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
    // iroh's `url` crate rejects a host with an `xn--` label that is not valid IDNA; a WHATWG
    // `URL` may keep it as it is. Each such label must decode (RFC 3492) to non-ASCII text that
    // encodes back to the same label.
    for (const label of url.hostname.split('.')) {
      if (label.startsWith('xn--') && !validAceLabel(label)) throw new DecodeError(`Cannot parse relay URL "${input.slice(0, 200)}": invalid IDNA label "${label.slice(0, 70)}"`);
    }
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

/**
 * Whether an `xn--` label is valid IDNA as iroh's `url` crate judges it: it decodes to text
 * that is not all ASCII, does not begin with a combining mark, and that the WHATWG host parser
 * encodes back to the same label.
 */
function validAceLabel(label: string): boolean {
  const text = decodePunycode(label.slice(4));
  if (text === undefined || [...text].every((c) => c.codePointAt(0)! < 0x80)) return false;
  // UTS #46 §4.1 V6 (which WHATWG hosts do not check): no label begins with a combining mark.
  if (/^\p{M}/u.test(text)) return false;
  try {
    return new URL(`http://${text}/`).hostname === label;
  } catch {
    return false;
  }
}

/** RFC 3492 §6.2 decoding (lower-case input); undefined when it is not valid Punycode. */
function decodePunycode(input: string): string | undefined {
  const BASE = 36;
  const TMIN = 1;
  const TMAX = 26;
  const delimiter = input.lastIndexOf('-');
  const out: number[] = [];
  for (let j = 0; j < Math.max(delimiter, 0); j++) {
    const c = input.charCodeAt(j);
    if (c >= 0x80) return undefined;
    out.push(c);
  }
  let n = 128;
  let i = 0;
  let bias = 72;
  let first = true;
  for (let pos = delimiter >= 0 ? delimiter + 1 : 0; pos < input.length; ) {
    const oldi = i;
    let w = 1;
    for (let k = BASE; ; k += BASE) {
      if (pos >= input.length) return undefined;
      const c = input.charCodeAt(pos++);
      const digit = c >= 0x61 && c <= 0x7a ? c - 0x61 : c >= 0x30 && c <= 0x39 ? c - 0x30 + 26 : -1;
      if (digit < 0) return undefined;
      i += digit * w;
      if (i > 0x10ffff * 64) return undefined;
      const t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
      if (digit < t) break;
      w *= BASE - t;
    }
    // Adapt the bias (§6.1).
    let delta = first ? Math.floor((i - oldi) / 700) : Math.floor((i - oldi) / 2);
    first = false;
    delta += Math.floor(delta / (out.length + 1));
    let k = 0;
    while (delta > ((BASE - TMIN) * TMAX) >> 1) {
      delta = Math.floor(delta / (BASE - TMIN));
      k += BASE;
    }
    bias = k + Math.floor(((BASE - TMIN + 1) * delta) / (delta + 38));
    n += Math.floor(i / (out.length + 1));
    i %= out.length + 1;
    if (n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return undefined;
    out.splice(i, 0, n);
    i++;
  }
  return String.fromCodePoint(...out);
}
