/**
 * The relay server's own WebSocket framing (`relay-server/src/websocket.ts`, RFC 6455) on a
 * real stream: messages split across reads at every possible point, fragmented messages with
 * control frames between the fragments, unmasking at every alignment, charging per frame
 * header, the close handshake, and the violations (each with its close code). Also the
 * address groups the admission limits count against.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addressGroup } from '../../relay-server/src/server.ts';
import { acceptKey, CloseCode, encodeFrame, Opcode, ServerWebSocket, unmask } from '../../relay-server/src/websocket.ts';
import { fcParams } from '../helpers/seed.ts';

/** A client frame (masked with `mask`), optionally not final. */
function clientFrame(opcode: number, payload: Uint8Array, mask: number[], fin = true): Buffer {
  const n = payload.length;
  const b0 = (fin ? 0x80 : 0) | opcode;
  const head = n < 126 ? [b0, 0x80 | n] : n < 65_536 ? [b0, 0x80 | 126, n >> 8, n & 0xff] : [b0, 0x80 | 127, 0, 0, 0, 0, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([...head, ...mask]), Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!))]);
}

/** A ServerWebSocket on an in-memory duplex stream: `feed` pushes reads, `written` collects writes. */
function harness(maxMessage = 1024 * 1024, charge: (n: number) => boolean = () => true) {
  const written: Buffer[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk);
      cb();
    },
  });
  const seen = { messages: [] as Buffer[], pings: [] as Buffer[], violations: [] as Array<[number, string]>, closed: undefined as number | undefined, charged: [] as number[], errors: [] as unknown[] };
  const ws = new ServerWebSocket(stream as unknown as Socket, maxMessage, {
    charge: (n) => {
      seen.charged.push(n);
      return charge(n);
    },
    onMessage: (d) => seen.messages.push(Buffer.from(d)),
    onPing: (p) => seen.pings.push(p),
    onViolation: (code, message) => seen.violations.push([code, message]),
    onClose: (code) => (seen.closed = code),
    onInternalError: (err) => seen.errors.push(err),
  });
  return { ws, stream, written, seen, feed: (b: Buffer) => stream.push(b) };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('relay WebSocket framing (RFC 6455)', () => {
  it('computes Sec-WebSocket-Accept as RFC 6455 §1.3’s example', () => {
    expect(acceptKey('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('unmasks at every alignment and length exactly as the byte-wise definition (§5.3)', () => {
    const mask = [0x12, 0xab, 0x00, 0xff];
    for (let off = 0; off < 8; off++) {
      for (const len of [0, 1, 3, 4, 5, 31, 32, 33, 100, 1201]) {
        const data = Buffer.from(Array.from({ length: len }, (_, i) => (i * 7 + off) & 0xff));
        const buf = Buffer.alloc(off + 4 + len + 3);
        buf.set(mask, off);
        data.copy(buf, off + 4);
        unmask(buf, off + 4, len, off);
        expect(buf.subarray(off + 4, off + 4 + len)).toEqual(Buffer.from(data.map((b, i) => b ^ mask[i & 3]!)));
      }
    }
  });

  it('delivers any sequence of messages, pings and fragments, whatever the read boundaries (property)', async () => {
    const message = fc.record({
      payload: fc.uint8Array({ minLength: 0, maxLength: 70_000 }),
      mask: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }),
      fragments: fc.integer({ min: 1, max: 4 }),
      pingBetween: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 5_000 }), { minLength: 1, maxLength: 40 }), async (messages, cuts) => {
        const h = harness();
        const frames: Buffer[] = [];
        for (const m of messages) {
          const parts = m.fragments;
          const size = Math.ceil(m.payload.length / parts) || 0;
          for (let i = 0; i < parts; i++) {
            const piece = m.payload.subarray(i * size, Math.min(m.payload.length, (i + 1) * size));
            frames.push(clientFrame(i === 0 ? Opcode.binary : Opcode.continuation, piece, m.mask, i === parts - 1));
            if (m.pingBetween && i < parts - 1) frames.push(clientFrame(Opcode.ping, Uint8Array.of(1, 2, 3), m.mask));
          }
        }
        const all = Buffer.concat(frames);
        let at = 0;
        for (let k = 0; at < all.length; k++) {
          const n = cuts[k % cuts.length]!;
          h.feed(Buffer.from(all.subarray(at, at + n)));
          at += n;
        }
        await tick();
        expect(h.seen.violations).toEqual([]);
        expect(h.seen.errors).toEqual([]);
        expect(h.seen.messages.map((b) => b.toString('hex'))).toEqual(messages.map((m) => Buffer.from(m.payload).toString('hex')));
        expect(h.seen.pings.length).toBe(messages.filter((m) => m.pingBetween).reduce((n, m) => n + m.fragments - 1, 0));
        // Every frame was charged with its whole wire size, once.
        expect(h.seen.charged.reduce((a, b) => a + b, 0)).toBe(all.length);
        expect(h.seen.charged.length).toBe(frames.length);
      }),
      fcParams('relay websocket reassembly', 60),
    );
  });

  it('charges a frame from its header alone, before its payload has arrived, and stops reading when told', async () => {
    let allow = true;
    const h = harness(1024 * 1024, () => allow);
    const big = clientFrame(Opcode.binary, new Uint8Array(100_000), [1, 2, 3, 4]);
    h.feed(big.subarray(0, 20));
    await tick();
    expect(h.seen.charged).toEqual([big.length]);
    allow = false;
    h.feed(Buffer.concat([big.subarray(20), clientFrame(Opcode.binary, Uint8Array.of(9), [1, 2, 3, 4]), clientFrame(Opcode.binary, Uint8Array.of(8), [1, 2, 3, 4])]));
    await tick();
    // The frame whose header said stop is processed; the next one waits for resume().
    expect(h.seen.messages.map((m) => m.length)).toEqual([100_000, 1]);
    allow = true;
    h.ws.resume();
    await tick();
    expect(h.seen.messages.map((m) => m.length)).toEqual([100_000, 1, 1]);
  });

  const violations: Array<[string, Buffer, number]> = [
    ['an unmasked frame', Buffer.from([0x82, 0x01, 0x00]), CloseCode.protocolError],
    ['RSV bits', Buffer.from([0xc2, 0x80, 1, 2, 3, 4]), CloseCode.protocolError],
    ['a reserved opcode', Buffer.from([0x83, 0x80, 1, 2, 3, 4]), CloseCode.protocolError],
    ['a fragmented ping', Buffer.from([0x09, 0x80, 1, 2, 3, 4]), CloseCode.protocolError],
    ['a ping over 125 bytes', clientFrame(Opcode.ping, new Uint8Array(126), [1, 2, 3, 4]), CloseCode.protocolError],
    ['a continuation without a message', clientFrame(Opcode.continuation, Uint8Array.of(1), [1, 2, 3, 4]), CloseCode.protocolError],
    ['a new message inside a fragmented one', Buffer.concat([clientFrame(Opcode.binary, Uint8Array.of(1), [1, 2, 3, 4], false), clientFrame(Opcode.binary, Uint8Array.of(1), [1, 2, 3, 4])]), CloseCode.protocolError],
    ['a text message', clientFrame(Opcode.text, Buffer.from('hi'), [1, 2, 3, 4]), CloseCode.unsupportedData],
    ['a 2^63-byte length claim', Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]), CloseCode.tooBig],
    ['a message over the limit', clientFrame(Opcode.binary, new Uint8Array(2_000), [1, 2, 3, 4]), CloseCode.tooBig],
    ['fragments summing past the limit', Buffer.concat([clientFrame(Opcode.binary, new Uint8Array(1_000), [1, 2, 3, 4], false), clientFrame(Opcode.continuation, new Uint8Array(1_000), [1, 2, 3, 4])]), CloseCode.tooBig],
    ['a message in 65 fragments', Buffer.concat([clientFrame(Opcode.binary, Uint8Array.of(1), [1, 2, 3, 4], false), ...Array.from({ length: 64 }, () => clientFrame(Opcode.continuation, Uint8Array.of(1), [1, 2, 3, 4], false))]), CloseCode.tooBig],
    ['a close frame of 1 byte', clientFrame(Opcode.close, Uint8Array.of(3), [1, 2, 3, 4]), CloseCode.protocolError],
  ];
  for (const [name, bytes, code] of violations) {
    it(`closes on ${name} with ${code}, from the header where it can`, async () => {
      const h = harness(1_500);
      h.feed(bytes);
      await tick();
      expect(h.seen.violations.map(([c]) => c)).toEqual([code]);
      expect(h.seen.messages).toEqual([]);
      // Our close frame went out with that code.
      const close = h.written.find((w) => w[0] === (0x80 | Opcode.close));
      expect(close?.readUInt16BE(2)).toBe(code);
      expect(h.ws.open).toBe(false);
    });
  }

  it('answers a close with the same code and ends the stream; data after it is not delivered', async () => {
    const h = harness();
    const payload = Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]); // 1000 "bye"
    h.feed(Buffer.concat([clientFrame(Opcode.close, payload, [9, 9, 9, 9]), clientFrame(Opcode.binary, Uint8Array.of(1), [9, 9, 9, 9])]));
    await tick();
    expect(h.written[0]).toEqual(encodeFrame(Opcode.close, Uint8Array.of(0x03, 0xe8)));
    expect(h.seen.messages).toEqual([]);
    h.stream.destroy();
    await tick();
    expect(h.seen.closed).toBe(1000);
  });

  it('cuts a close reason to 123 bytes on a character boundary', () => {
    const h = harness();
    h.ws.close(CloseCode.policy, 'é'.repeat(100));
    const frame = h.written[0]!;
    expect(frame[1]).toBeLessThanOrEqual(125);
    expect(frame.subarray(4).toString('utf8')).toBe('é'.repeat(61));
  });
});

describe('address groups of the per-address limits', () => {
  it('groups IPv6 by /64, maps IPv4-mapped addresses to IPv4, keeps IPv4 addresses apart', () => {
    expect(addressGroup('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(addressGroup('2001:0db8:0001:0002::')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressGroup('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressGroup('192.0.2.7')).toBe('192.0.2.7');
    expect(addressGroup('192.0.2.8')).toBe('192.0.2.8');
  });
});
