/**
 * IP socket addresses (IPv4 and IPv6, no zone), parsed and printed as Rust's
 * `std::net::SocketAddr` does, because iroh compares and prints them that way.
 *
 * Printing follows RFC 5952 §4 (lower case, longest run of two or more zero groups
 * compressed, the first one on a tie), with IPv4-mapped addresses as `::ffff:a.b.c.d`.
 *
 * @module
 */
import { DecodeError } from '../util/errors.ts';
import { compareBytes } from '../util/bytes.ts';

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // Rust rejects empty parts, leading zeros ("01") and anything but decimal digits.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length > 45) return undefined;
  const out = new Uint8Array(16);
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string, allowV4Tail: boolean): number[] | undefined => {
    if (part === '') return [];
    const groups = part.split(':');
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === undefined) return undefined;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      words.push(parseInt(g, 16));
    }
    return words;
  };
  let words: number[];
  if (halves.length === 1) {
    const w = parseGroups(halves[0]!, true);
    if (w === undefined || w.length !== 8) return undefined;
    words = w;
  } else {
    const head = parseGroups(halves[0]!, false);
    const tail = parseGroups(halves[1]!, true);
    // "::" stands for at least one zero group.
    if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

function formatIpv6(ip: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((ip[2 * i]! << 8) | ip[2 * i + 1]!);
  // IPv4-mapped (::ffff:a.b.c.d), printed with a dotted tail as Rust does.
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestLen < 2) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** An IPv4 or IPv6 address with a port. */
export class SocketAddr {
  /** 4 or 16 bytes. */
  readonly ip: Uint8Array;
  readonly port: number;

  private constructor(ip: Uint8Array, port: number) {
    this.ip = ip;
    this.port = port;
  }

  /** From raw parts: `ip` is 4 (IPv4) or 16 (IPv6) bytes. */
  static fromParts(ip: Uint8Array, port: number): SocketAddr {
    if (!(ip instanceof Uint8Array) || (ip.length !== 4 && ip.length !== 16)) throw new RangeError('IP address must be 4 or 16 bytes');
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`Port must be 0..65535, got ${port}`);
    return new SocketAddr(ip.slice(), port);
  }

  /**
   * Parse `a.b.c.d:port` or `[v6]:port`, as Rust's `SocketAddr::from_str` (zone ids are not
   * accepted: iroh's encodings drop them).
   *
   * @throws {DecodeError} on anything else
   */
  static parse(text: string): SocketAddr {
    if (typeof text !== 'string') throw new TypeError('Expected a string');
    let host: string;
    let portText: string;
    if (text.startsWith('[')) {
      const close = text.indexOf(']');
      if (close < 0 || text[close + 1] !== ':') throw new DecodeError(`Cannot parse socket address "${text}": expected [ipv6]:port`);
      host = text.slice(1, close);
      portText = text.slice(close + 2);
      if (host.includes('%')) throw new DecodeError(`Cannot parse socket address "${text}": IPv6 zone ids are not supported`);
    } else {
      const colon = text.lastIndexOf(':');
      if (colon < 0) throw new DecodeError(`Cannot parse socket address "${text}": missing port`);
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
    if (!/^(0|[1-9][0-9]{0,4})$/.test(portText) || Number(portText) > 65535) {
      throw new DecodeError(`Cannot parse socket address "${text}": invalid port`);
    }
    const ip = text.startsWith('[') ? parseIpv6(host) : parseIpv4(host);
    if (ip === undefined) throw new DecodeError(`Cannot parse socket address "${text}": invalid IP address`);
    return new SocketAddr(ip, Number(portText));
  }

  get family(): 4 | 6 {
    return this.ip.length === 4 ? 4 : 6;
  }

  /** The address without the port, as Rust prints it (`1.2.3.4`, `::1`). */
  get host(): string {
    return this.ip.length === 4 ? this.ip.join('.') : formatIpv6(this.ip);
  }

  /** `a.b.c.d:port` or `[v6]:port`. */
  toString(): string {
    return this.ip.length === 4 ? `${this.host}:${this.port}` : `[${this.host}]:${this.port}`;
  }

  toJSON(): string {
    return this.toString();
  }

  equals(other: SocketAddr): boolean {
    return this.port === other.port && compareBytes(this.ip, other.ip) === 0;
  }

  /** Rust's `Ord` for `SocketAddr`: V4 before V6, then address bytes, then port. */
  static compare(a: SocketAddr, b: SocketAddr): number {
    if (a.ip.length !== b.ip.length) return a.ip.length - b.ip.length;
    return compareBytes(a.ip, b.ip) || a.port - b.port;
  }
}
