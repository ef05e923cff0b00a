/**
 * iroh `EndpointTicket` strings (iroh-tickets 1.0.0, `shared/docs/iroh-wire.md` §5.4):
 * `"endpoint"` ‖ lower-case unpadded RFC 4648 base32 of `00` (wire-format variant 1) ‖
 * postcard `EndpointAddr`. Parsing accepts either case after the prefix, as iroh does.
 *
 * Unlike iroh (whose postcard decoder ignores trailing bytes) we reject bytes after the
 * address: they would be silently lost on re-encoding.
 *
 * @module
 */
import { EndpointAddr } from './endpoint-addr.ts';
import { MAX_TICKET_CHARS } from './limits.ts';
import { PostcardReader, PostcardWriter } from '../util/postcard.ts';
import { BASE32_RFC4648_LOWER, decodeBase32, encodeBase32 } from '../util/base32.ts';
import { DecodeError } from '../util/errors.ts';

/** Run `f`, rewording its DecodeError as "Cannot parse ticket: <what went wrong>". */
function withContext<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    // "Cannot decode public key: x" → "Cannot parse ticket: public key: x".
    throw new DecodeError(`Cannot parse ticket: ${err.message.replace(/^Cannot (?:decode|parse)(?: ticket)?:? ?/, '')}`, { cause: err });
  }
}

/** The ticket kind prefix. */
export const ENDPOINT_TICKET_PREFIX = 'endpoint';

/** An endpoint ticket: a shareable string holding an {@link EndpointAddr}. */
export class EndpointTicket {
  readonly addr: EndpointAddr;

  constructor(addr: EndpointAddr) {
    this.addr = addr;
  }

  /** The ticket's binary form: `00` ‖ postcard EndpointAddr. */
  toBytes(): Uint8Array {
    const w = new PostcardWriter();
    w.varint(0);
    this.addr.encodeInto(w);
    return w.finish();
  }

  /** Decode the binary form. @throws {DecodeError} */
  static fromBytes(bytes: Uint8Array): EndpointTicket {
    return withContext(() => {
      const r = new PostcardReader(bytes);
      const variant = r.varint(32);
      if (variant !== 0) throw new DecodeError(`unknown wire-format variant ${variant}`);
      const addr = EndpointAddr.decodeFrom(r);
      r.finish('ticket');
      return new EndpointTicket(addr);
    });
  }

  /** `endpoint<base32>`. */
  toString(): string {
    return ENDPOINT_TICKET_PREFIX + encodeBase32(this.toBytes(), BASE32_RFC4648_LOWER);
  }

  toJSON(): string {
    return this.toString();
  }

  /**
   * Parse a ticket string.
   *
   * @throws {DecodeError} on a wrong prefix, bad base32, truncated or trailing bytes, or an
   *   invalid key or address inside
   */
  static parse(text: string): EndpointTicket {
    if (typeof text !== 'string') throw new TypeError('Expected a string');
    if (text.length > MAX_TICKET_CHARS) throw new DecodeError(`Cannot parse ticket: longer than ${MAX_TICKET_CHARS} characters`);
    if (!text.startsWith(ENDPOINT_TICKET_PREFIX)) throw new DecodeError(`Cannot parse ticket: expected prefix "${ENDPOINT_TICKET_PREFIX}"`);
    const bytes = withContext(() => decodeBase32(text.slice(ENDPOINT_TICKET_PREFIX.length).toLowerCase(), BASE32_RFC4648_LOWER));
    return EndpointTicket.fromBytes(bytes);
  }
}
