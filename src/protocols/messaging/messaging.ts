/**
 * The messaging protocol (`sdnet/messaging/1`), both halves: the handler that serves the
 * streams a paired peer opens, and the client exchanges (`ping`, `send`, `request`, `hello`,
 * `goodbye`) on a connection to a peer.
 *
 * One bidirectional stream per exchange: the client writes one message and finishes its
 * side; the server answers each message it reads (several per stream are allowed, as
 * Spacedrive's server loop does) and finishes when the client has. Replies are correlated by
 * id (`message_id`, `request_id`) and bounded by a timeout. Unlike Spacedrive, `Goodbye` is
 * length-prefixed like everything else (spacedrive-net.md §2.4) and the frame length is
 * checked before allocation.
 *
 * @module
 */
import type { Connection } from '../../endpoint/connection.ts';
import { StreamResetError, type BiStream } from '../../endpoint/streams.ts';
import type { PublicKey } from '../../identity/keys.ts';
import { SdnetError } from '../../util/errors.ts';
import { coarseTimeout } from '../../util/coarse-timer.ts';
import type { ConnectionContext, DeviceProtocol, ProtocolLimits } from '../../service/protocol-registry.ts';
import type { FramedStream } from '../stream.ts';
import { StreamCode, streamCodeName } from '../codes.ts';
import { FrameReader, encodeFrame } from '../framing.ts';
import {
  MESSAGING_DEFAULT_TIMEOUT_MS,
  MESSAGING_MAX_CONCURRENT_STREAMS,
  MESSAGING_MAX_FRAMES_PER_STREAM,
  MESSAGING_MAX_MESSAGE_BYTES,
  MESSAGING_MAX_REASON_LENGTH,
  MESSAGING_STREAM_IDLE_TIMEOUT_MS,
} from '../limits.ts';
import { MESSAGING_ALPN, MessageError, decodeMessage, encodeMessage, messageType, type HelloBody, type JsonValue, type Message } from './messages.ts';

/** A messaging exchange failed; `code` says how. */
export class MessagingError extends SdnetError {
  /** The stream code the peer reset with, for `ERR_MESSAGE_REJECTED`. */
  readonly streamCode: number | undefined;
  /** The peer's error code, for `ERR_REQUEST_FAILED`. */
  readonly remoteCode: string | undefined;
  constructor(
    code: 'ERR_MESSAGING_TIMEOUT' | 'ERR_MESSAGE_REJECTED' | 'ERR_MESSAGING_NO_REPLY' | 'ERR_MESSAGING_BAD_REPLY' | 'ERR_REQUEST_FAILED' | 'ERR_MESSAGE_TOO_LARGE',
    message: string,
    extra: { streamCode?: number; remoteCode?: string; cause?: unknown } = {},
  ) {
    super(code, message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'MessagingError';
    this.streamCode = extra.streamCode;
    this.remoteCode = extra.remoteCode;
  }
}

/** A message a peer sent with `send`. */
export interface ReceivedData {
  readonly messageId: string;
  readonly contentType: string;
  readonly payload: JsonValue;
}

/** What the messaging handler asks of the service. */
export interface MessagingHooks {
  /** Our Hello, sent in answer to a peer's. */
  hello(): HelloBody;
  /** A peer told us who it is and where it is. */
  onHello(peer: PublicKey, hello: HelloBody): void;
  /** A peer sent data; throwing makes the Ack say `success: false`. */
  onData(peer: PublicKey, data: ReceivedData): void | Promise<void>;
  /**
   * A peer's request; the value is the response. Throw an error with a `code` to fail it.
   * `context.signal` aborts when the stream does (idle timeout, connection lost).
   */
  onRequest(peer: PublicKey, payload: JsonValue, context: { readonly signal: AbortSignal }): Promise<JsonValue>;
  /** A peer announced it is going away (shutdown). */
  onGoodbye(peer: PublicKey, reason: string, connection: Connection): void;
}

export interface ExchangeOptions {
  /** Give up after this long (ms; default 30 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A random prefix per process, then a counter: ids unique per run, no randomness per message. */
const ID_PREFIX = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('');
let counter = 0;
export function newId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${ID_PREFIX}-${counter.toString(36)}`;
}

/** Reset both halves of a stream we give up on. */
function abandon(bi: BiStream, code: number, reader?: FrameReader): void {
  void bi.writable.abort({ streamCode: code }).catch(() => undefined);
  if (reader !== undefined) void reader.cancel(code);
  else void bi.readable.cancel({ streamCode: code }).catch(() => undefined);
}

export class MessagingProtocol implements DeviceProtocol {
  readonly alpn = MESSAGING_ALPN;
  readonly limits: ProtocolLimits;
  readonly #hooks: MessagingHooks;

  constructor(hooks: MessagingHooks, limits: Partial<ProtocolLimits> = {}) {
    this.#hooks = hooks;
    this.limits = {
      maxMessageBytes: MESSAGING_MAX_MESSAGE_BYTES,
      maxConcurrentStreams: MESSAGING_MAX_CONCURRENT_STREAMS,
      idleTimeoutMs: MESSAGING_STREAM_IDLE_TIMEOUT_MS,
      ...limits,
    };
  }

  // ---------------------------------------------------------------- server side

  async handleStream(stream: FramedStream, ctx: ConnectionContext): Promise<void> {
    for (let n = 0; ; n++) {
      const frame = await stream.read();
      if (frame === undefined) break;
      if (n >= MESSAGING_MAX_FRAMES_PER_STREAM) throw new MessageError('ERR_MESSAGE_MALFORMED', `More than ${MESSAGING_MAX_FRAMES_PER_STREAM} messages on one stream`);
      const message = decodeMessage(frame);
      const reply = await this.#answer(message, stream, ctx);
      if (reply !== undefined) await stream.write(encodeMessage(reply));
    }
    // FIN without waiting for its acknowledgement (QUIC delivers it): the handler slot is free
    // for the next stream now, not one ack delay later.
    stream.finish().catch(() => undefined);
  }

  async #answer(message: Message, stream: FramedStream, ctx: ConnectionContext): Promise<Message | undefined> {
    const peer = ctx.remoteId;
    if ('Ping' in message) return { Pong: { timestamp: Date.now(), original_timestamp: message.Ping.timestamp } };
    if ('Hello' in message) {
      this.#hooks.onHello(peer, message.Hello);
      return { Hello: this.#hooks.hello() };
    }
    if ('Data' in message) {
      const { message_id, content_type, payload } = message.Data;
      try {
        await this.#hooks.onData(peer, { messageId: message_id, contentType: content_type, payload });
        return { Ack: { message_id, success: true, error: null } };
      } catch (err) {
        return { Ack: { message_id, success: false, error: String((err as Error)?.message ?? err).slice(0, MESSAGING_MAX_REASON_LENGTH) } };
      }
    }
    if ('Request' in message) {
      const { request_id, payload } = message.Request;
      try {
        // The signal is made only if the handler asks for it.
        const result = await this.#hooks.onRequest(peer, payload, {
          get signal() {
            return stream.signal;
          },
        });
        return { Response: { request_id, ok: true, payload: result ?? null, error: null } };
      } catch (err) {
        if (stream.failure !== undefined) throw err;
        const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code.slice(0, 64) : 'ERR_REQUEST_HANDLER';
        const text = String((err as Error)?.message ?? err).slice(0, MESSAGING_MAX_REASON_LENGTH);
        return { Response: { request_id, ok: false, payload: null, error: { code, message: text } } };
      }
    }
    if ('Goodbye' in message) {
      this.#hooks.onGoodbye(peer, message.Goodbye.reason, ctx.connection);
      return undefined;
    }
    // Pong, Ack, Response only ever answer our own messages.
    throw new MessageError('ERR_MESSAGE_MALFORMED', `Unexpected ${messageType(message)} opening an exchange`);
  }

  // ---------------------------------------------------------------- client side

  /**
   * Send one message on a new stream and read the one reply (`expectReply`), or none.
   */
  async #exchange(connection: Connection, message: Message, options: ExchangeOptions, expectReply: boolean): Promise<Message | undefined> {
    const frame = encodeFrame(encodeMessage(message));
    if (frame.length - 4 > this.limits.maxMessageBytes) throw new MessagingError('ERR_MESSAGE_TOO_LARGE', `Message of ${frame.length - 4} bytes exceeds the limit of ${this.limits.maxMessageBytes}`);
    options.signal?.throwIfAborted();
    const timeoutMs = options.timeoutMs ?? MESSAGING_DEFAULT_TIMEOUT_MS;
    const what = messageType(message);
    // Timeout and abort both settle `failed`, raced against each step: no AbortController,
    // listener chain or timer per exchange (thousands a second on one connection).
    let fail!: (reason: unknown) => void;
    let failure: unknown;
    const failed = new Promise<never>((_, reject) => {
      fail = (reason) => {
        failure ??= reason;
        reject(failure);
      };
    });
    failed.catch(() => undefined);
    const cancelTimer = coarseTimeout(timeoutMs, () => fail(new MessagingError('ERR_MESSAGING_TIMEOUT', `No answer to ${what} within ${timeoutMs} ms`)));
    const onAbort = (): void => fail(options.signal!.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let bi: BiStream | undefined;
    let reader: FrameReader | undefined;
    try {
      const opening = connection.openBi();
      try {
        bi = await Promise.race([opening, failed]);
      } catch (err) {
        // Opened after all (the peer's stream limit let up): give it back at once.
        void opening.then((late) => abandon(late, StreamCode.IDLE_TIMEOUT)).catch(() => undefined);
        throw err;
      }
      const writer = bi.writable.getWriter();
      // Message and FIN go out together; their acknowledgement is not waited for.
      writer.write(frame).catch(() => undefined);
      const finished = writer.close();
      finished.catch(() => undefined);
      writer.releaseLock();
      reader = new FrameReader(bi.readable);
      if (!expectReply) {
        await Promise.race([finished, failed]);
        return undefined;
      }
      const replyFrame = await Promise.race([reader.readFrame(this.limits.maxMessageBytes), failed]);
      if (replyFrame === undefined) throw new MessagingError('ERR_MESSAGING_NO_REPLY', `The peer finished the stream without answering ${what}`);
      // The peer's FIN follows; read it so the stream is released on both sides.
      void reader.readFrame(this.limits.maxMessageBytes).catch(() => undefined);
      try {
        return decodeMessage(replyFrame);
      } catch (err) {
        throw new MessagingError('ERR_MESSAGING_BAD_REPLY', `The peer answered ${what} with a malformed message`, { cause: err });
      }
    } catch (err) {
      if (failure !== undefined) {
        if (bi !== undefined) abandon(bi, StreamCode.IDLE_TIMEOUT, reader);
        throw failure;
      }
      if (err instanceof StreamResetError) {
        throw new MessagingError('ERR_MESSAGE_REJECTED', `The peer rejected ${what} (${streamCodeName(err.streamCode)})`, { streamCode: err.streamCode, cause: err });
      }
      throw err;
    } finally {
      cancelTimer();
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Ping the peer; resolves with the round trip in ms. */
  async ping(connection: Connection, options: ExchangeOptions = {}): Promise<number> {
    const t0 = performance.now();
    const timestamp = Date.now();
    const reply = await this.#exchange(connection, { Ping: { timestamp, payload: null } }, options, true);
    if (reply === undefined || !('Pong' in reply) || reply.Pong.original_timestamp !== timestamp) throw new MessagingError('ERR_MESSAGING_BAD_REPLY', 'The peer did not answer Ping with its Pong');
    return performance.now() - t0;
  }

  /** Tell the peer who we are; resolves with who it is. */
  async hello(connection: Connection, hello: HelloBody, options: ExchangeOptions = {}): Promise<HelloBody> {
    const reply = await this.#exchange(connection, { Hello: hello }, options, true);
    if (reply === undefined || !('Hello' in reply)) throw new MessagingError('ERR_MESSAGING_BAD_REPLY', 'The peer did not answer Hello with its own');
    return reply.Hello;
  }

  /** Send data; resolves once the peer acknowledged it, with the round trip in ms. */
  async send(connection: Connection, payload: JsonValue, options: ExchangeOptions & { contentType?: string; messageId?: string } = {}): Promise<{ messageId: string; rttMs: number }> {
    // A resend of the same message (after its connection was superseded) keeps its id, so the receiver can tell.
    const messageId = options.messageId ?? newId();
    const t0 = performance.now();
    const reply = await this.#exchange(connection, { Data: { message_id: messageId, content_type: options.contentType ?? 'application/json', payload } }, options, true);
    if (reply === undefined || !('Ack' in reply) || reply.Ack.message_id !== messageId) throw new MessagingError('ERR_MESSAGING_BAD_REPLY', 'The peer did not acknowledge the message with its id');
    if (!reply.Ack.success) throw new MessagingError('ERR_MESSAGE_REJECTED', `The peer refused the message: ${reply.Ack.error ?? 'no reason'}`);
    return { messageId, rttMs: performance.now() - t0 };
  }

  /**
   * Send a request; resolves with the peer's response.
   *
   * @throws {MessagingError} `ERR_REQUEST_FAILED` with the peer's `remoteCode` when its handler failed
   */
  async request(connection: Connection, payload: JsonValue, options: ExchangeOptions = {}): Promise<JsonValue> {
    const requestId = newId();
    const reply = await this.#exchange(connection, { Request: { request_id: requestId, payload } }, options, true);
    if (reply === undefined || !('Response' in reply) || reply.Response.request_id !== requestId) throw new MessagingError('ERR_MESSAGING_BAD_REPLY', 'The peer did not answer the request with its id');
    const r = reply.Response;
    if (!r.ok) throw new MessagingError('ERR_REQUEST_FAILED', `The peer's handler failed: ${r.error?.message ?? 'no reason'}`, r.error ? { remoteCode: r.error.code } : {});
    return r.payload;
  }

  /** Tell the peer we are going away; resolves once it has the message (or on timeout). */
  async goodbye(connection: Connection, reason: string, options: ExchangeOptions = {}): Promise<void> {
    await this.#exchange(connection, { Goodbye: { reason: reason.slice(0, MESSAGING_MAX_REASON_LENGTH), timestamp: Date.now() } }, options, false);
  }
}
