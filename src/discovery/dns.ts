/**
 * A small DNS message codec (RFC 1035 §4) for what discovery needs: pkarr's signed `_iroh`
 * TXT records, mDNS queries and answers (RFC 6762), and the relay's optional DNS server.
 * Record types A, AAAA, TXT, SRV and PTR are decoded; any other type is kept as raw bytes.
 *
 * Decoding is bounded by construction: the message length, the number of records, the
 * compression pointers followed per name (a loop ends in an error, not a hang), the name and
 * label lengths, and every RDATA length against the bytes that remain. Bad input raises a
 * {@link DecodeError} and nothing else.
 *
 * Names are strings of dot-joined labels without the trailing dot (`''` is the root). A label
 * holding a dot or a byte outside printable ASCII is refused: nothing sdnet looks up needs it.
 *
 * @module
 */
import { DecodeError } from '../util/errors.ts';
import { MAX_DNS_LABEL_BYTES, MAX_DNS_MESSAGE_BYTES, MAX_DNS_NAME_BYTES, MAX_DNS_POINTER_JUMPS, MAX_DNS_RECORDS, MAX_TXT_STRINGS } from './limits.ts';

export const TYPE_A = 1;
export const TYPE_PTR = 12;
export const TYPE_TXT = 16;
export const TYPE_AAAA = 28;
export const TYPE_SRV = 33;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;

/** Header flag: a response (QR). */
export const FLAG_RESPONSE = 0x8000;
/** Header flag: authoritative answer (AA). */
export const FLAG_AUTHORITATIVE = 0x0400;
/** Header flag: truncated (TC). */
export const FLAG_TRUNCATED = 0x0200;

export type RecordData =
  | { readonly type: typeof TYPE_A | typeof TYPE_AAAA; readonly ip: Uint8Array }
  | { readonly type: typeof TYPE_TXT; readonly strings: readonly Uint8Array[] }
  | { readonly type: typeof TYPE_SRV; readonly priority: number; readonly weight: number; readonly port: number; readonly target: string }
  | { readonly type: typeof TYPE_PTR; readonly name: string }
  | { readonly type: number; readonly raw: Uint8Array };

export interface DnsQuestion {
  readonly name: string;
  readonly type: number;
  /** Class without the mDNS unicast-response bit. */
  readonly class: number;
  /** mDNS: the top bit of the class (RFC 6762 §5.4). */
  readonly unicastResponse?: boolean;
}

export interface DnsRecord {
  readonly name: string;
  /** Class without the mDNS cache-flush bit. */
  readonly class: number;
  /** mDNS: the top bit of the class (RFC 6762 §10.2). */
  readonly cacheFlush?: boolean;
  readonly ttl: number;
  readonly data: RecordData;
}

export interface DnsMessage {
  readonly id: number;
  readonly flags: number;
  readonly questions: readonly DnsQuestion[];
  readonly answers: readonly DnsRecord[];
  readonly authorities: readonly DnsRecord[];
  readonly additionals: readonly DnsRecord[];
}

/** Whether two names are the same (ASCII case-insensitive, RFC 1035 §2.3.3). */
export function sameName(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}

/** TXT character-string helpers. */
export const txt = {
  encode: (s: string): Uint8Array => new TextEncoder().encode(s),
  decode: (b: Uint8Array): string => new TextDecoder('utf-8', { fatal: false }).decode(b),
};

class Reader {
  pos = 0;
  readonly buf: Uint8Array;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new DecodeError(`DNS message truncated in ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = ((this.buf[this.pos]! << 24) >>> 0) + ((this.buf[this.pos + 1]! << 16) | (this.buf[this.pos + 2]! << 8) | this.buf[this.pos + 3]!);
    this.pos += 4;
    return v;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

/** Read a possibly compressed name at `r.pos`; leaves `r.pos` after the name as stored in place. */
function readName(r: Reader): string {
  const labels: string[] = [];
  let pos = r.pos;
  let wireBytes = 1;
  let jumps = 0;
  let endInPlace: number | undefined;
  for (;;) {
    if (pos >= r.buf.length) throw new DecodeError('DNS name runs past the message');
    const len = r.buf[pos]!;
    if (len === 0) {
      pos += 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= r.buf.length) throw new DecodeError('DNS compression pointer truncated');
      // RFC 1035 §4.1.4: a pointer; only backwards, and only so many (loops end here).
      const target = ((len & 0x3f) << 8) | r.buf[pos + 1]!;
      if (++jumps > MAX_DNS_POINTER_JUMPS) throw new DecodeError('DNS name has too many compression pointers');
      if (target >= pos) throw new DecodeError('DNS compression pointer does not point backwards');
      endInPlace ??= pos + 2;
      pos = target;
      continue;
    }
    if (kind !== 0) throw new DecodeError('DNS label type not supported');
    if (len > MAX_DNS_LABEL_BYTES) throw new DecodeError('DNS label too long');
    if (pos + 1 + len > r.buf.length) throw new DecodeError('DNS label runs past the message');
    wireBytes += len + 1;
    if (wireBytes > MAX_DNS_NAME_BYTES) throw new DecodeError('DNS name too long');
    const label = r.buf.subarray(pos + 1, pos + 1 + len);
    for (const c of label) {
      if (c <= 0x20 || c >= 0x7f || c === 0x2e) throw new DecodeError('DNS label holds a byte sdnet does not accept');
    }
    labels.push(String.fromCharCode(...label));
    pos += 1 + len;
  }
  r.pos = endInPlace ?? pos;
  return labels.join('.');
}

function readRecord(r: Reader): DnsRecord {
  const name = readName(r);
  const type = r.u16('record type');
  const rawClass = r.u16('record class');
  const ttl = r.u32('record TTL');
  const rdlen = r.u16('RDATA length');
  r.need(rdlen, 'RDATA');
  const end = r.pos + rdlen;
  let data: RecordData;
  switch (type) {
    case TYPE_A:
    case TYPE_AAAA: {
      const want = type === TYPE_A ? 4 : 16;
      if (rdlen !== want) throw new DecodeError(`DNS ${type === TYPE_A ? 'A' : 'AAAA'} record of ${rdlen} bytes`);
      data = { type, ip: r.bytes(rdlen, 'address').slice() };
      break;
    }
    case TYPE_TXT: {
      const strings: Uint8Array[] = [];
      while (r.pos < end) {
        if (strings.length >= MAX_TXT_STRINGS) throw new DecodeError('DNS TXT record has too many strings');
        const n = r.u8('TXT length');
        if (r.pos + n > end) throw new DecodeError('DNS TXT string runs past its record');
        strings.push(r.bytes(n, 'TXT string').slice());
      }
      data = { type, strings };
      break;
    }
    case TYPE_SRV: {
      if (rdlen < 7) throw new DecodeError('DNS SRV record too short');
      const priority = r.u16('SRV');
      const weight = r.u16('SRV');
      const port = r.u16('SRV');
      const target = readName(r);
      data = { type, priority, weight, port, target };
      break;
    }
    case TYPE_PTR:
      data = { type, name: readName(r) };
      break;
    default:
      data = { type, raw: r.bytes(rdlen, 'RDATA').slice() };
  }
  if (r.pos !== end) throw new DecodeError('DNS RDATA length does not match its content');
  return { name, class: rawClass & 0x7fff, ...(rawClass & 0x8000 ? { cacheFlush: true } : {}), ttl, data };
}

/**
 * Decode a DNS message.
 *
 * @throws {DecodeError} on anything malformed or beyond the limits
 */
export function decodeDnsMessage(buf: Uint8Array): DnsMessage {
  if (buf.length > MAX_DNS_MESSAGE_BYTES) throw new DecodeError('DNS message too large');
  const r = new Reader(buf);
  const id = r.u16('header');
  const flags = r.u16('header');
  const qd = r.u16('header');
  const an = r.u16('header');
  const ns = r.u16('header');
  const ar = r.u16('header');
  // Counts are peer-controlled: bounded before anything is read for them. A question takes
  // at least 5 bytes and a record 11, so counts beyond the bytes left are refused too.
  if (qd + an + ns + ar > MAX_DNS_RECORDS) throw new DecodeError('DNS message has too many records');
  if (qd * 5 + (an + ns + ar) * 11 > buf.length - 12) throw new DecodeError('DNS message counts exceed its length');
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < qd; i++) {
    const name = readName(r);
    const type = r.u16('question type');
    const cls = r.u16('question class');
    questions.push({ name, type, class: cls & 0x7fff, ...(cls & 0x8000 ? { unicastResponse: true } : {}) });
  }
  const section = (n: number): DnsRecord[] => {
    const out: DnsRecord[] = [];
    for (let i = 0; i < n; i++) out.push(readRecord(r));
    return out;
  };
  const answers = section(an);
  const authorities = section(ns);
  const additionals = section(ar);
  return { id, flags, questions, answers, authorities, additionals };
}

class Writer {
  buf: Uint8Array;
  pos = 0;
  readonly #names = new Map<string, number>();
  readonly max: number;
  constructor(max: number) {
    this.max = max;
    this.buf = new Uint8Array(Math.min(512, max));
  }
  #grow(n: number): void {
    if (this.pos + n > this.max) throw new RangeError(`DNS message would exceed ${this.max} bytes`);
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.min(this.max, Math.max(this.buf.length * 2, this.pos + n)));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
  u8(v: number): void {
    this.#grow(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.#grow(2);
    this.buf[this.pos++] = v >> 8;
    this.buf[this.pos++] = v & 0xff;
  }
  u32(v: number): void {
    this.u16(Math.floor(v / 65536) & 0xffff);
    this.u16(v & 0xffff);
  }
  bytes(b: Uint8Array): void {
    this.#grow(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  name(name: string, compress: boolean): void {
    const labels = name === '' ? [] : name.split('.');
    let wire = 1;
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const at = compress ? this.#names.get(suffix) : undefined;
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (compress && this.pos < 0x3fff) this.#names.set(suffix, this.pos);
      const label = new TextEncoder().encode(labels[i]!);
      if (label.length === 0 || label.length > MAX_DNS_LABEL_BYTES) throw new RangeError(`Bad DNS label in ${JSON.stringify(name)}`);
      wire += label.length + 1;
      if (wire > MAX_DNS_NAME_BYTES) throw new RangeError('DNS name too long');
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }
}

function writeRecord(w: Writer, rec: DnsRecord, compress: boolean): void {
  w.name(rec.name, compress);
  w.u16(rec.data.type);
  w.u16((rec.class & 0x7fff) | (rec.cacheFlush ? 0x8000 : 0));
  w.u32(rec.ttl >>> 0);
  const lenAt = w.pos;
  w.u16(0);
  const d = rec.data;
  if ('ip' in d) w.bytes(d.ip);
  else if ('strings' in d) {
    for (const s of d.strings) {
      if (s.length > 255) throw new RangeError('TXT string longer than 255 bytes');
      w.u8(s.length);
      w.bytes(s);
    }
  } else if ('target' in d) {
    w.u16(d.priority);
    w.u16(d.weight);
    w.u16(d.port);
    w.name(d.target, compress);
  } else if ('name' in d) w.name(d.name, compress);
  else w.bytes(d.raw);
  const len = w.pos - lenAt - 2;
  w.buf[lenAt] = len >> 8;
  w.buf[lenAt + 1] = len & 0xff;
}

/**
 * Encode a DNS message, compressing names (RFC 1035 §4.1.4) unless `compress` is false.
 *
 * @throws {RangeError} when it would exceed `maxBytes` (default {@link MAX_DNS_MESSAGE_BYTES}) or a name is invalid
 */
export function encodeDnsMessage(msg: Partial<DnsMessage>, options: { maxBytes?: number; compress?: boolean } = {}): Uint8Array {
  const compress = options.compress ?? true;
  const w = new Writer(options.maxBytes ?? MAX_DNS_MESSAGE_BYTES);
  const questions = msg.questions ?? [];
  const answers = msg.answers ?? [];
  const authorities = msg.authorities ?? [];
  const additionals = msg.additionals ?? [];
  w.u16(msg.id ?? 0);
  w.u16(msg.flags ?? 0);
  w.u16(questions.length);
  w.u16(answers.length);
  w.u16(authorities.length);
  w.u16(additionals.length);
  for (const q of questions) {
    w.name(q.name, compress);
    w.u16(q.type);
    w.u16((q.class & 0x7fff) | (q.unicastResponse ? 0x8000 : 0));
  }
  for (const rec of [...answers, ...authorities, ...additionals]) writeRecord(w, rec, compress);
  return w.buf.slice(0, w.pos);
}
