/**
 * Length-prefixed frames, shared by every device-layer protocol: a u32 big-endian length and
 * that many bytes. The length is checked against the protocol's maximum *before* anything is
 * allocated for the body (Spacedrive allocates whatever a peer declares,
 * spacedrive-net.md §2.1), and a stream that ends inside a frame is an error, not a short
 * message.
 *
 * @module
 */
import { SdnetError } from '../util/errors.ts';
import { abortable } from '../util/abort.ts';
import { StreamCode } from './codes.ts';
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES_CEILING } from './limits.ts';

/**
 * A peer broke a protocol's rules on one stream; `streamCode` is what that stream is reset
 * with. Only that stream is affected.
 */
export class StreamProtocolError extends SdnetError {
  readonly streamCode: number;
  constructor(code: string, streamCode: number, message: string) {
    super(code, message);
    this.name = 'StreamProtocolError';
    this.streamCode = streamCode;
  }
}

/** A frame broke the framing rules (too large, or cut off). */
export class FrameError extends StreamProtocolError {
  constructor(code: 'ERR_FRAME_TOO_LARGE' | 'ERR_FRAME_TRUNCATED', message: string) {
    super(code, code === 'ERR_FRAME_TOO_LARGE' ? StreamCode.FRAME_TOO_LARGE : StreamCode.TRUNCATED, message);
    this.name = 'FrameError';
  }
}

/** `body` with its length prefix, as one buffer (one write, one STREAM frame when small). */
export function encodeFrame(body: Uint8Array): Uint8Array {
  if (body.length > MAX_FRAME_BYTES_CEILING) throw new RangeError(`A frame carries at most ${MAX_FRAME_BYTES_CEILING} bytes`);
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Reads frames (or exact byte counts) from a web `ReadableStream`, buffering what arrives
 * past the current frame for the next one.
 */
export class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #chunks: Uint8Array[] = [];
  #offset = 0;
  #buffered = 0;
  #eof = false;
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;

  constructor(readable: ReadableStream<Uint8Array>) {
    this.#reader = readable.getReader();
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Whether the peer finished the stream and everything was consumed. */
  get done(): boolean {
    return this.#eof && this.#buffered === 0;
  }

  async #fill(signal: AbortSignal | undefined): Promise<boolean> {
    if (this.#eof) return false;
    // A read abandoned by an abort is still pending: the next fill takes its result, so no
    // chunk is ever lost.
    const pending = (this.#pending ??= this.#reader.read());
    const r = signal ? await abortable<ReadableStreamReadResult<Uint8Array>>(signal, (resolve, reject) => void pending.then(resolve, reject)) : await pending;
    this.#pending = undefined;
    if (r.done) {
      this.#eof = true;
      return false;
    }
    if (r.value.length > 0) {
      this.#chunks.push(r.value);
      this.#buffered += r.value.length;
    }
    return true;
  }

  /** Take `n` buffered bytes (n ≤ buffered). */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length - this.#offset >= n) {
      // Fast path: within one chunk, no copy.
      const out = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      this.#buffered -= n;
      if (this.#offset === first.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(n - filled, c.length - this.#offset);
      out.set(c.subarray(this.#offset, this.#offset + k), filled);
      filled += k;
      this.#offset += k;
      if (this.#offset === c.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.#buffered -= n;
    return out;
  }

  /**
   * Exactly `n` bytes; undefined if the stream ended before any of them (a clean end), a
   * {@link FrameError} `ERR_FRAME_TRUNCATED` if it ended part-way.
   */
  async readExact(n: number, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    while (this.#buffered < n) {
      if (!(await this.#fill(options.signal))) {
        if (this.#buffered === 0) return undefined;
        throw new FrameError('ERR_FRAME_TRUNCATED', `Stream ended ${this.#buffered} bytes into ${n}`);
      }
    }
    return n === 0 ? new Uint8Array(0) : this.#take(n);
  }

  /**
   * The next frame's body; undefined when the stream ends cleanly between frames.
   *
   * @throws {FrameError} `ERR_FRAME_TOO_LARGE` when the declared length exceeds `maxBytes`
   *   (checked before the body is read or allocated); `ERR_FRAME_TRUNCATED` when the stream
   *   ends inside a frame
   */
  async readFrame(maxBytes: number, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    const header = await this.readExact(FRAME_HEADER_BYTES, options);
    if (header === undefined) return undefined;
    const length = ((header[0]! << 24) | (header[1]! << 16) | (header[2]! << 8) | header[3]!) >>> 0;
    if (length > maxBytes) throw new FrameError('ERR_FRAME_TOO_LARGE', `Frame of ${length} bytes exceeds the limit of ${maxBytes}`);
    const body = await this.readExact(length, options);
    if (body === undefined) throw new FrameError('ERR_FRAME_TRUNCATED', `Stream ended before a frame body of ${length} bytes`);
    return body;
  }

  /** Stop reading: the peer is asked to stop sending with `code` (STOP_SENDING). */
  async cancel(code: number): Promise<void> {
    await this.#reader.cancel({ streamCode: code }).catch(() => undefined);
  }

  /** Release the underlying reader without cancelling. */
  release(): void {
    this.#reader.releaseLock();
  }
}

/**
 * Writes frames to a web `WritableStream`.
 */
export class FrameWriter {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;

  constructor(writable: WritableStream<Uint8Array>) {
    this.#writer = writable.getWriter();
  }

  /** Write one frame (resolves once it fits the stream's send buffer). */
  async write(body: Uint8Array): Promise<void> {
    await this.#writer.write(encodeFrame(body));
  }

  /** Finish the stream (FIN); resolves once the peer has everything. */
  async close(): Promise<void> {
    await this.#writer.close();
  }

  /** Reset the stream with `code` (RESET_STREAM). */
  async reset(code: number): Promise<void> {
    await this.#writer.abort({ streamCode: code }).catch(() => undefined);
  }
}
