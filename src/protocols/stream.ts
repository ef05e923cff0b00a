/**
 * `FramedStream`: one bidirectional stream as a protocol handler sees it — frames in and
 * out under the protocol's maximum message size, and an idle timeout that resets a stream
 * the peer leaves silent (so a hostile peer cannot pin a handler slot forever).
 *
 * Cheap per stream (a server may serve thousands a second): no AbortController, listener or
 * timer of its own unless asked for. {@link FramedStream.abort} fails the pending and later
 * reads and writes with a reason and resets the stream; a server that serves many streams
 * sweeps their {@link FramedStream.lastActivity} from one timer and aborts the idle ones
 * (`ProtocolRegistry.serve` does), while a stream given `idleTimeoutMs` and used alone arms
 * one lazily re-armed timer.
 *
 * @module
 */
import type { BiStream } from '../endpoint/streams.ts';
import { abortReason } from '../util/abort.ts';
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
  /** Reset the stream after this long without a frame read or written (ms; 0: never, or swept by the caller). */
  readonly idleTimeoutMs: number;
  /** Aborting it aborts the stream (connection closing, service shutting down). */
  readonly signal?: AbortSignal;
}

export class FramedStream {
  readonly id: number;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #options: FramedStreamOptions;
  #failure: unknown;
  #failedPromise: Promise<never> | undefined;
  #fail: ((reason: unknown) => void) | undefined;
  #controller: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onParentAbort: (() => void) | undefined;
  #ended = false;
  /** When a frame was last read or written (performance.now()). */
  lastActivity = performance.now();

  constructor(stream: BiStream, options: FramedStreamOptions) {
    this.id = stream.id;
    this.#reader = new FrameReader(stream.readable);
    this.#writer = new FrameWriter(stream.writable);
    this.#options = options;
    const parent = options.signal;
    if (parent) {
      if (parent.aborted) this.abort(abortReason(parent));
      else {
        this.#onParentAbort = () => this.abort(abortReason(parent));
        parent.addEventListener('abort', this.#onParentAbort, { once: true });
      }
    }
    if (options.idleTimeoutMs > 0) this.#arm(options.idleTimeoutMs);
  }

  /** Aborted when the stream is (idle timeout, connection or service going away); created on first use. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#failure !== undefined) this.#controller.abort(this.#failure);
    }
    return this.#controller.signal;
  }

  /** Why the stream was aborted, if it was. */
  get failure(): unknown {
    return this.#failure;
  }

  /**
   * Give up on the stream: pending and later reads and writes fail with `reason`, and the
   * stream is reset both ways with the reason's stream code (or `INTERNAL`).
   */
  abort(reason: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = reason;
    this.#fail?.(reason);
    this.#controller?.abort(reason);
    const code = (reason as { streamCode?: unknown })?.streamCode;
    this.reset(typeof code === 'number' ? code : StreamCode.SHUTDOWN);
  }

  /** Settles (rejects) when the stream is aborted: raced against writes that may block. */
  #failed(): Promise<never> {
    if (this.#failedPromise === undefined) {
      this.#failedPromise = new Promise<never>((_, reject) => {
        this.#fail = reject;
        if (this.#failure !== undefined) reject(this.#failure);
      });
      this.#failedPromise.catch(() => undefined);
    }
    return this.#failedPromise;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#ended) return;
      const idle = performance.now() - this.lastActivity;
      if (idle >= this.#options.idleTimeoutMs) this.abort(new StreamIdleError(this.#options.idleTimeoutMs));
      else this.#arm(this.#options.idleTimeoutMs - idle);
    }, ms);
    this.#timer.unref?.();
  }

  /** The next frame (undefined at a clean end of the peer's side). */
  async read(): Promise<Uint8Array | undefined> {
    if (this.#failure !== undefined) throw this.#failure;
    let frame: Uint8Array | undefined;
    try {
      // An abort cancels the reader, which ends this read; the failure then explains it.
      frame = await this.#reader.readFrame(this.#options.maxMessageBytes);
    } catch (err) {
      throw this.#failure ?? err;
    }
    if (this.#failure !== undefined) throw this.#failure;
    this.lastActivity = performance.now();
    return frame;
  }

  /** Exactly `n` raw bytes (for protocols that mix frames and raw data). */
  async readExact(n: number): Promise<Uint8Array | undefined> {
    if (this.#failure !== undefined) throw this.#failure;
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.#reader.readExact(n);
    } catch (err) {
      throw this.#failure ?? err;
    }
    if (this.#failure !== undefined) throw this.#failure;
    this.lastActivity = performance.now();
    return bytes;
  }

  /** Write one frame. */
  async write(body: Uint8Array): Promise<void> {
    if (body.length > this.#options.maxMessageBytes) throw new RangeError(`Message of ${body.length} bytes exceeds the limit of ${this.#options.maxMessageBytes}`);
    if (this.#failure !== undefined) throw this.#failure;
    // A write blocked by a peer that does not read must not outlive an abort.
    await Promise.race([this.#writer.write(body), this.#failed()]);
    this.lastActivity = performance.now();
  }

  /** Finish our side (FIN); resolves once the peer has everything. */
  async finish(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    await Promise.race([this.#writer.close(), this.#failed()]);
    this.#end();
  }

  /** Abandon the stream both ways with `code` (RESET_STREAM and STOP_SENDING). */
  reset(code: number): void {
    this.#end();
    void this.#writer.reset(code);
    void this.#reader.cancel(code);
  }

  /** Stop the timer and detach from the parent signal. */
  #end(): void {
    this.#ended = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#onParentAbort) this.#options.signal?.removeEventListener('abort', this.#onParentAbort);
    this.#onParentAbort = undefined;
  }

  /** Called by the server when the handler returns: release the timer and listener. */
  close(): void {
    this.#end();
  }
}
