/**
 * The server side of RFC 6455 for the relay, on a socket the HTTP server handed over after
 * the upgrade. The relay needs only part of WebSocket (binary messages, close, ping), and
 * doing it here rather than in a general library puts every byte in the relay's hands:
 *
 * - each frame is reported to {@link ServerWebSocketHandlers.charge} as soon as its header
 *   arrives — before its payload is buffered or unmasked — so the caller's rate limit holds
 *   for every frame, data or control, text or binary;
 * - the payload length is checked against the message limit from the header (a 2^63 claim
 *   costs nothing), payload bytes are buffered only as they arrive, and a frame that lies in
 *   one TCP read is unmasked in place and handed out without a copy;
 * - text messages are refused (1003): the relay protocol is binary (iroh-wire §1.3);
 * - pings are handed to the caller, which decides whether a pong fits the client's queue;
 * - nothing is written except through the caller (data) or the close handshake here.
 *
 * Close codes (RFC 6455 §7.4.1): 1002 for framing violations, 1003 for text, 1009 for a
 * message over the limit. The socket ends after our close frame and the peer's answer, or
 * {@link CLOSE_GRACE_MS} later.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { MAX_MESSAGE_FRAGMENTS } from './limits.ts';

/** RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key for Sec-WebSocket-Accept. */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** How long we wait for the peer's close frame after sending ours before cutting the socket. */
export const CLOSE_GRACE_MS = 1_000;

/** RFC 6455 §5.2 opcodes. */
export const Opcode = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** Close codes used (RFC 6455 §7.4.1). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  noStatus: 1005,
  abnormal: 1006,
  policy: 1008,
  tooBig: 1009,
  internalError: 1011,
  serviceRestart: 1012,
} as const;

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2 step 5.4). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + ACCEPT_GUID).digest('base64');
}

/** Bytes of a server frame header (unmasked, RFC 6455 §5.2) for a payload of `n` bytes. */
export function frameHeaderLength(n: number): number {
  return n < 126 ? 2 : n < 65_536 ? 4 : 10;
}

/** Write a FIN frame header for `n` payload bytes into `out` at 0; returns its length. */
export function writeFrameHeader(out: Uint8Array, opcode: number, n: number): number {
  out[0] = 0x80 | opcode;
  if (n < 126) {
    out[1] = n;
    return 2;
  }
  if (n < 65_536) {
    out[1] = 126;
    out[2] = n >>> 8;
    out[3] = n & 0xff;
    return 4;
  }
  out[1] = 127;
  const hi = Math.floor(n / 2 ** 32);
  const lo = n >>> 0;
  out[2] = hi >>> 24;
  out[3] = (hi >>> 16) & 0xff;
  out[4] = (hi >>> 8) & 0xff;
  out[5] = hi & 0xff;
  out[6] = lo >>> 24;
  out[7] = (lo >>> 16) & 0xff;
  out[8] = (lo >>> 8) & 0xff;
  out[9] = lo & 0xff;
  return 10;
}

/** A whole server frame (header and payload) in one buffer. */
export function encodeFrame(opcode: number, payload: Uint8Array): Buffer {
  const h = frameHeaderLength(payload.length);
  const out = Buffer.allocUnsafe(h + payload.length);
  writeFrameHeader(out, opcode, payload.length);
  out.set(payload, h);
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

let lastBuffer: ArrayBufferLike | undefined;
let lastView: Int32Array<ArrayBufferLike> = new Int32Array(0);

/** An Int32Array over all whole words of `ab`, cached for the last buffer asked for. */
function int32View(ab: ArrayBufferLike): Int32Array {
  if (ab !== lastBuffer) {
    lastBuffer = ab;
    lastView = new Int32Array(ab, 0, ab.byteLength >>> 2);
  }
  return lastView;
}
const MASK_SCRATCH = new Uint8Array(4);

/**
 * XOR `len` bytes of `buf` from `off` with the 4-byte mask at `maskOff` (RFC 6455 §5.3), in
 * place. Four bytes at a time over the aligned middle; the mask is rotated to match.
 */
export function unmask(buf: Buffer, off: number, len: number, maskOff: number): void {
  const m0 = buf[maskOff]!;
  const m1 = buf[maskOff + 1]!;
  const m2 = buf[maskOff + 2]!;
  const m3 = buf[maskOff + 3]!;
  const end = off + len;
  if (len < 32) {
    for (let i = 0; i < len; i++) buf[off + i] = buf[off + i]! ^ ((i & 3) === 0 ? m0 : (i & 3) === 1 ? m1 : (i & 3) === 2 ? m2 : m3);
    return;
  }
  const mask = MASK_SCRATCH;
  mask[0] = m0;
  mask[1] = m1;
  mask[2] = m2;
  mask[3] = m3;
  // Head: until the absolute address is a multiple of 4.
  let i = off;
  const abs = buf.byteOffset + off;
  const head = (4 - (abs & 3)) & 3;
  for (let k = 0; k < head; k++, i++) buf[i] = buf[i]! ^ mask[k & 3]!;
  // Middle: 32-bit words. Byte j of the payload is masked with mask[j % 4]; the word at i
  // starts at payload index (i - off), so the mask is rotated by that much.
  const words = (end - i) >>> 2;
  if (words > 0) {
    const r = (i - off) & 3;
    // The word's bytes in memory order must be mask[r], mask[r+1], …, whatever the endianness.
    const a = mask[r]!;
    const b = mask[(r + 1) & 3]!;
    const c = mask[(r + 2) & 3]!;
    const d = mask[(r + 3) & 3]!;
    const w = LITTLE_ENDIAN ? a | (b << 8) | (c << 16) | (d << 24) : (a << 24) | (b << 16) | (c << 8) | d;
    // One view per underlying ArrayBuffer (a TCP read holds many frames), not per frame.
    const view = int32View(buf.buffer);
    const first = (buf.byteOffset + i) >>> 2;
    for (let k = first; k < first + words; k++) view[k] = view[k]! ^ w;
    i += words * 4;
  }
  // Tail.
  for (; i < end; i++) buf[i] = buf[i]! ^ mask[(i - off) & 3]!;
}

/** What the relay connection does with what arrives. */
export interface ServerWebSocketHandlers {
  /**
   * A frame header arrived announcing `wireBytes` bytes (header and payload); called before
   * any work on the payload. Return `false` to stop processing further frames until
   * {@link ServerWebSocket.resume} (the frame whose header this was is still processed).
   */
  charge(wireBytes: number): boolean;
  /** A complete binary message. A view valid only during the call: copy what you keep. */
  onMessage(data: Buffer): void;
  /** A ping with its payload (≤ 125 bytes, copied); the caller queues the pong (RFC 6455 §5.5.3). */
  onPing(payload: Buffer): void;
  /** A text message or a framing violation: we are closing with `code`. */
  onViolation(code: number, message: string): void;
  /** The TCP connection is gone; `code` is the peer's close code, or 1006 without one. */
  onClose(code: number, reason: string): void;
  /** Framing code here threw (a bug, not the peer's doing): the socket is already cut. */
  onInternalError(err: unknown): void;
}

type State = 'open' | 'closing' | 'closed';

/**
 * One upgraded relay connection's WebSocket framing. Reads through `socket.on('data')`;
 * writes nothing on its own except close frames.
 */
export class ServerWebSocket {
  readonly socket: Socket;
  readonly #h: ServerWebSocketHandlers;
  #maxMessage: number;
  #state: State = 'open';
  /** A frame that spans TCP reads: its bytes so far. */
  #acc: Buffer | undefined;
  #accLen = 0;
  /** Total length of that frame (header + payload) once its header was read, else 0. */
  #need = 0;
  /** Its header length (mask key included), once read. */
  #hdr = 0;
  /** A fragmented message being assembled (RFC 6455 §5.4). */
  #fragments: Buffer[] | undefined;
  #fragmentBytes = 0;
  /** Processing stopped by `charge` returning false: the rest of the chunk waits here. */
  #paused = false;
  #held: Buffer | undefined;
  #heldOff = 0;
  #closeTimer: NodeJS.Timeout | undefined;
  #peerCode: number = CloseCode.abnormal;
  #peerReason = '';
  #closeSent = false;

  constructor(socket: Socket, maxMessageBytes: number, handlers: ServerWebSocketHandlers) {
    this.socket = socket;
    this.#maxMessage = maxMessageBytes;
    this.#h = handlers;
    socket.on('data', this.#onData);
    socket.on('end', () => socket.destroy());
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.#state = 'closed';
      if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
      this.#acc = undefined;
      this.#fragments = undefined;
      this.#held = undefined;
      this.#h.onClose(this.#peerCode, this.#peerReason);
    });
  }

  /** Open: neither side has started the close handshake. */
  get open(): boolean {
    return this.#state === 'open';
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** Change the largest message accepted (larger once the client is authenticated). */
  set maxMessageBytes(n: number) {
    this.#maxMessage = n;
  }

  /** Stop reading (back-pressure to the client's TCP send window). */
  pause(): void {
    this.#paused = true;
    this.socket.pause();
  }

  /** Continue after {@link pause} or a `charge` that returned false. */
  resume(): void {
    if (!this.#paused || this.#state === 'closed') return;
    this.#paused = false;
    const held = this.#held;
    if (held !== undefined) {
      this.#held = undefined;
      try {
        this.#parse(held, this.#heldOff);
      } catch (err) {
        this.socket.destroy();
        this.#h.onInternalError(err);
        return;
      }
    }
    if (!this.#paused && !this.closed) this.socket.resume();
  }

  /**
   * Start the close handshake: send a close frame with `code` and `reason` (cut to fit the
   * 123 bytes a control frame leaves), then wait for the peer's close frame, at most
   * {@link CLOSE_GRACE_MS}. Data arriving meanwhile is discarded.
   */
  close(code: number, reason = ''): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#sendClose(code, reason);
    this.#closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.#closeTimer.unref();
  }

  /** Cut the connection at once. */
  terminate(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closing';
    this.socket.destroy();
  }

  #sendClose(code: number, reason: string): void {
    if (this.#closeSent || this.socket.destroyed || !this.socket.writable) return;
    this.#closeSent = true;
    let r = Buffer.from(reason, 'utf8');
    if (r.length > 123) {
      // Cut on a character boundary: back off continuation bytes (10xxxxxx).
      let n = 123;
      while (n > 0 && (r[n]! & 0xc0) === 0x80) n--;
      r = r.subarray(0, n);
    }
    const payload = Buffer.allocUnsafe(2 + r.length);
    payload.writeUInt16BE(code, 0);
    r.copy(payload, 2);
    this.socket.write(encodeFrame(Opcode.close, payload));
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#state === 'closed') return;
    try {
      if (this.#paused) {
        // Bytes that were already on their way when we paused: hold them.
        this.#hold(chunk, 0);
        return;
      }
      this.#parse(chunk, 0);
    } catch (err) {
      // Whatever went wrong concerns this connection only: it must not reach the event loop.
      this.socket.destroy();
      this.#h.onInternalError(err);
    }
  };

  #hold(chunk: Buffer, off: number): void {
    if (off >= chunk.length) return;
    const rest = off === 0 ? chunk : chunk.subarray(off);
    if (this.#held === undefined) {
      this.#held = rest;
      this.#heldOff = 0;
    } else {
      // Bounded: a paused socket stops reading, so at most a read or two lands here.
      this.#held = Buffer.concat([this.#held.subarray(this.#heldOff), rest]);
      this.#heldOff = 0;
    }
  }

  /** Parse frames from `chunk` starting at `off`. */
  #parse(chunk: Buffer, off: number): void {
    const end = chunk.length;
    if (this.#accLen > 0) {
      off = this.#continuePartial(chunk, off);
      if (off < 0) return;
      if (this.#paused) {
        this.#hold(chunk, off);
        return;
      }
    }
    while (off < end) {
      if (this.#state === 'closed') return;
      const avail = end - off;
      if (avail < 2) break;
      const b1 = chunk[off + 1]!;
      let len = b1 & 0x7f;
      let hdr = 6;
      if (len === 126) {
        if (avail < 4) break;
        len = (chunk[off + 2]! << 8) | chunk[off + 3]!;
        hdr = 8;
      } else if (len === 127) {
        if (avail < 10) break;
        const hi = chunk.readUInt32BE(off + 2);
        // More than 2^53 cannot be a number; far more than any limit anyway.
        len = hi > 0x1fffff ? Number.MAX_SAFE_INTEGER : hi * 2 ** 32 + chunk.readUInt32BE(off + 6);
        hdr = 14;
      }
      if (!this.#checkHeader(chunk[off]!, b1, len)) return;
      const more = this.#h.charge(hdr + len);
      if (avail < hdr + len) {
        // The rest arrives later: keep what we have (header already checked and charged).
        this.#startPartial(chunk, off, hdr + len, hdr);
        if (!more) this.pause();
        return;
      }
      this.#frame(chunk, off, hdr, len);
      off += hdr + len;
      if (!more) this.pause();
      if (this.#paused) {
        this.#hold(chunk, off);
        return;
      }
    }
    // Fewer bytes than a header: keep them.
    if (off < end && this.#state !== 'closed') this.#startPartial(chunk, off, 0, 0);
  }

  /** Keep the start of a frame that continues in later reads. `need` = 0: header incomplete. */
  #startPartial(chunk: Buffer, off: number, need: number, hdr: number): void {
    const have = chunk.length - off;
    // Grow with what arrives, never to what a header claims up front.
    const cap = need === 0 ? 14 : Math.min(need, Math.max(have, 4096));
    const acc = Buffer.allocUnsafe(Math.max(cap, have));
    chunk.copy(acc, 0, off);
    this.#acc = acc;
    this.#accLen = have;
    this.#need = need;
    this.#hdr = hdr;
  }

  #append(src: Buffer, off: number, n: number): void {
    let acc = this.#acc!;
    if (this.#accLen + n > acc.length) {
      const target = this.#need === 0 ? 14 : this.#need;
      const grown = Buffer.allocUnsafe(Math.min(target, Math.max(acc.length * 2, this.#accLen + n)));
      acc.copy(grown, 0, 0, this.#accLen);
      acc = grown;
      this.#acc = acc;
    }
    src.copy(acc, this.#accLen, off, off + n);
    this.#accLen += n;
  }

  /** Feed a partial frame from `chunk`; returns the offset after what it used, or -1 if closed. */
  #continuePartial(chunk: Buffer, off: number): number {
    const end = chunk.length;
    if (this.#need === 0) {
      const take = Math.min(14 - this.#accLen, end - off);
      this.#append(chunk, off, take);
      const acc = this.#acc!;
      const have = this.#accLen;
      if (have < 2) return end;
      const b1 = acc[1]!;
      let len = b1 & 0x7f;
      let hdr = 6;
      if (len === 126) {
        if (have < 4) return end;
        len = (acc[2]! << 8) | acc[3]!;
        hdr = 8;
      } else if (len === 127) {
        if (have < 10) return end;
        const hi = acc.readUInt32BE(2);
        len = hi > 0x1fffff ? Number.MAX_SAFE_INTEGER : hi * 2 ** 32 + acc.readUInt32BE(6);
        hdr = 14;
      }
      if (!this.#checkHeader(acc[0]!, b1, len)) return -1;
      const need = hdr + len;
      const more = this.#h.charge(need);
      if (!more) this.pause();
      this.#need = need;
      this.#hdr = hdr;
      // Took past the end of this (short) frame: give those bytes back to the chunk.
      let used = take;
      if (have > need) {
        used -= have - need;
        this.#accLen = need;
      }
      off += used;
    }
    const take = Math.min(this.#need - this.#accLen, end - off);
    if (take > 0) this.#append(chunk, off, take);
    off += take;
    if (this.#accLen < this.#need) return end;
    const acc = this.#acc!;
    const need = this.#need;
    const hdr = this.#hdr;
    this.#acc = undefined;
    this.#accLen = 0;
    this.#need = 0;
    this.#frame(acc, 0, hdr, need - hdr);
    return this.#state === 'closed' ? -1 : off;
  }

  /** Header checks of RFC 6455 §5.2 and the relay's limits, before any payload work. */
  #checkHeader(b0: number, b1: number, len: number): boolean {
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.#violation(CloseCode.protocolError, 'RSV bits set without an extension');
    // RFC 6455 §5.1: a server MUST close the connection on an unmasked client frame.
    if ((b1 & 0x80) === 0) return this.#violation(CloseCode.protocolError, 'unmasked client frame');
    if (opcode >= 0x8) {
      if (opcode > Opcode.pong) return this.#violation(CloseCode.protocolError, `reserved opcode ${opcode}`);
      // RFC 6455 §5.5: control frames are not fragmented and carry at most 125 bytes.
      if ((b0 & 0x80) === 0) return this.#violation(CloseCode.protocolError, 'fragmented control frame');
      if (len > 125) return this.#violation(CloseCode.protocolError, 'control frame over 125 bytes');
      return true;
    }
    if (opcode > Opcode.binary) return this.#violation(CloseCode.protocolError, `reserved opcode ${opcode}`);
    if (opcode === Opcode.continuation ? this.#fragments === undefined : this.#fragments !== undefined) {
      return this.#violation(CloseCode.protocolError, opcode === Opcode.continuation ? 'continuation without a message' : 'new message inside a fragmented one');
    }
    // iroh-wire §1.3: the message limit, checked against the header before buffering.
    if (len > this.#maxMessage - this.#fragmentBytes) return this.#violation(CloseCode.tooBig, `message over ${this.#maxMessage} bytes`);
    return true;
  }

  /** One complete frame at `buf[off..]`: `hdr` header bytes (mask key last), `len` payload. */
  #frame(buf: Buffer, off: number, hdr: number, len: number): void {
    const b0 = buf[off]!;
    const opcode = b0 & 0x0f;
    const start = off + hdr;
    if (this.#state !== 'open' && opcode !== Opcode.close) return; // closing: discard data
    unmask(buf, start, len, start - 4);
    const payload = buf.subarray(start, start + len);
    const fin = (b0 & 0x80) !== 0;
    switch (opcode) {
      case Opcode.binary:
        if (fin) this.#h.onMessage(payload);
        else this.#startFragments(payload);
        return;
      case Opcode.continuation:
        this.#addFragment(payload, fin);
        return;
      case Opcode.text:
        // iroh-wire §1.3 says text is ignored; we refuse it: nothing honest sends it, and a
        // message that is neither parsed nor forwarded must not be a free way to send bytes.
        this.#violation(CloseCode.unsupportedData, 'text messages are not part of the relay protocol');
        return;
      case Opcode.ping:
        this.#h.onPing(Buffer.from(payload));
        return;
      case Opcode.pong:
        return; // we send no pings; an unsolicited pong is allowed and ignored (RFC 6455 §5.5.3)
      case Opcode.close:
        this.#onCloseFrame(payload);
        return;
    }
  }

  #startFragments(payload: Buffer): void {
    this.#fragments = [Buffer.from(payload)];
    this.#fragmentBytes = payload.length;
  }

  #addFragment(payload: Buffer, fin: boolean): void {
    const parts = this.#fragments!;
    if (parts.length >= MAX_MESSAGE_FRAGMENTS) {
      this.#violation(CloseCode.tooBig, `message in more than ${MAX_MESSAGE_FRAGMENTS} fragments`);
      return;
    }
    parts.push(Buffer.from(payload));
    this.#fragmentBytes += payload.length;
    if (!fin) return;
    this.#fragments = undefined;
    this.#fragmentBytes = 0;
    this.#h.onMessage(Buffer.concat(parts));
  }

  #onCloseFrame(payload: Buffer): void {
    // RFC 6455 §5.5.1: empty, or a 2-byte code and a UTF-8 reason.
    if (payload.length === 1) {
      this.#violation(CloseCode.protocolError, 'close frame of 1 byte');
      return;
    }
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : CloseCode.noStatus;
    this.#peerCode = code;
    this.#peerReason = payload.length > 2 ? payload.toString('utf8', 2) : '';
    if (this.#state === 'open') {
      this.#state = 'closing';
      // Echo the code (RFC 6455 §5.5.1) unless it is one a peer may not send.
      const valid = payload.length < 2 || (code >= 1000 && code <= 4999 && code !== 1004 && code !== 1005 && code !== 1006 && code !== 1015);
      this.#sendClose(valid && payload.length >= 2 ? code : valid ? CloseCode.normal : CloseCode.protocolError, '');
    }
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    this.socket.end();
    if (this.#closeTimer === undefined) {
      this.#closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
      this.#closeTimer.unref();
    }
  }

  #violation(code: number, message: string): false {
    if (this.#state === 'open') {
      this.#h.onViolation(code, message);
      this.close(code, message);
    }
    return false;
  }

}
