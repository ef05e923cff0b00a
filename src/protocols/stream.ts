/**
 * `FramedStream`: one bidirectional stream as a protocol handler sees it — frames in and
 * out under the protocol's maximum message size, and an idle timeout that resets a stream
 * the peer leaves silent (so a hostile peer cannot pin a handler slot forever).
 *
 * @module
 */
import type { BiStream } from '../endpoint/streams.ts';
import { abortable, abortReason } from '../util/abort.ts';
import { StreamCode } from './codes.ts';
import { FrameReader, FrameWriter, StreamProtocolError } from './framing.ts';

/** The stream stayed silent longer than its idle timeout. */
export class StreamIdleError extends StreamProtocolError {
  constructor(ms: number) {
    super('ERR_STREAM_IDLE', StreamCode.IDLE_TIMEOUT, `Stream idle for ${ms} ms`);
    this.name = 'StreamIdleError';
  }
}

export interface FramedStreamOptions {
  /** Largest frame accepted (checked before allocation). */
  readonly maxMessageBytes: number;
  /** Reset the stream after this long without a frame read or written (ms; 0: never). */
  readonly idleTimeoutMs: number;
  /** Aborting it resets the stream (connection closing, service shutting down). */
  readonly signal?: AbortSignal;
}

export class FramedStream {
  readonly id: number;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #options: FramedStreamOptions;
  readonly #controller = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onParentAbort: (() => void) | undefined;
  #ended = false;
  #lastActivity = 0;

  constructor(stream: BiStream, options: FramedStreamOptions) {
    this.id = stream.id;
    this.#reader = new FrameReader(stream.readable);
    this.#writer = new FrameWriter(stream.writable);
    this.#options = options;
    const parent = options.signal;
    if (parent) {
      if (parent.aborted) this.#controller.abort(abortReason(parent));
      else {
        this.#onParentAbort = () => this.#controller.abort(abortReason(parent));
        parent.addEventListener('abort', this.#onParentAbort, { once: true });
      }
    }
    this.#touch();
  }

  /** Aborted when the stream times out or its connection / service goes away. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Note activity. The timer is not re-armed on every frame (that would be a timer per
   * frame): it fires at the earliest possible deadline and, if there was activity since,
   * waits out the rest.
   */
  #touch(): void {
    this.#lastActivity = performance.now();
    const ms = this.#options.idleTimeoutMs;
    if (ms > 0 && !this.#ended && this.#timer === undefined) this.#arm(ms);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#ended) return;
      const idle = performance.now() - this.#lastActivity;
      if (idle >= this.#options.idleTimeoutMs) this.#controller.abort(new StreamIdleError(this.#options.idleTimeoutMs));
      else this.#arm(this.#options.idleTimeoutMs - idle);
    }, ms);
    this.#timer.unref?.();
  }

  /** The next frame (undefined at a clean end of the peer's side). */
  async read(): Promise<Uint8Array | undefined> {
    const frame = await this.#reader.readFrame(this.#options.maxMessageBytes, { signal: this.#controller.signal });
    this.#touch();
    return frame;
  }

  /** Exactly `n` raw bytes (for protocols that mix frames and raw data). */
  async readExact(n: number): Promise<Uint8Array | undefined> {
    const bytes = await this.#reader.readExact(n, { signal: this.#controller.signal });
    this.#touch();
    return bytes;
  }

  /** Write one frame. */
  async write(body: Uint8Array): Promise<void> {
    if (body.length > this.#options.maxMessageBytes) throw new RangeError(`Message of ${body.length} bytes exceeds the limit of ${this.#options.maxMessageBytes}`);
    await abortable<void>(this.#controller.signal, (resolve, reject) => void this.#writer.write(body).then(resolve, reject));
    this.#touch();
  }

  /** Finish our side (FIN); resolves once the peer has everything. */
  async finish(): Promise<void> {
    await abortable<void>(this.#controller.signal, (resolve, reject) => void this.#writer.close().then(resolve, reject));
    this.#end();
  }

  /** Abandon the stream both ways with `code` (RESET_STREAM and STOP_SENDING). */
  reset(code: number): void {
    this.#end();
    void this.#writer.reset(code);
    void this.#reader.cancel(code);
  }

  /** Stop the timer and detach from the parent signal (the handler is done with the stream). */
  #end(): void {
    this.#ended = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#onParentAbort) this.#options.signal?.removeEventListener('abort', this.#onParentAbort);
    this.#onParentAbort = undefined;
  }

  /** Called by the server when the handler returns: release timers and listeners. */
  close(): void {
    this.#end();
  }
}
