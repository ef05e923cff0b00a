/**
 * Every stream of a connection and the connection-level flow control (RFC 9000 §2–§4): the
 * application's stream commands, the stream frames the peer sends, stream counts, credit
 * (MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS and their *_BLOCKED signals), and the round-robin
 * writing of stream data into packets.
 *
 * @module
 */
import type { ConnectionSettings } from '../config.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { MAX_RECV_FRAGMENTS, RECV_MEMORY_SLACK } from '../limits.ts';
import type { FixedWriter } from '../wire/fixed-writer.ts';
import { streamFrameOverhead, writeStreamHeader, type Frame } from '../wire/frames.ts';
import type { TransportParameters } from '../wire/transport-params.ts';
import { RecvBudget } from './recv-buffer.ts';
import type { FrameRecord } from './spaces.ts';
import { Stream, StreamRecv, StreamSend, streamDir, streamId, streamIndex, streamInitiator, type Dir } from './streams.ts';
import type { ConnectionEvent } from './types.ts';

/** Writes control frames into a packet while they fit (see the connection's packet assembly). */
export interface ControlSink {
  put(f: Exclude<Frame, { type: 'ack' | 'stream' | 'crypto' | 'padding' }>, record: FrameRecord): boolean;
}

export class StreamsState {
  readonly #side: 'client' | 'server';
  readonly #settings: ConnectionSettings;
  readonly #events: ConnectionEvent[];
  /** The smoothed RTT now (µs), for window auto-tuning. */
  readonly #rtt: () => number;
  /** The current time (µs). */
  readonly #now: () => number;

  /** What every receive buffer (streams, CRYPTO) and the DATAGRAM queue may hold together. */
  readonly recvBudget = new RecvBudget(MAX_RECV_FRAGMENTS);
  localMaxData: number;
  localDataWindow: number;
  recvTotal = 0;
  readTotal = 0;
  maxDataPending = false;
  lastDataWindowUpdate = 0;
  peerMaxData = 0;
  sentTotal = 0;
  dataBlockedAt: number | undefined;
  /** The connection limit a DATA_BLOCKED was last queued for. */
  dataBlockedReported = -1;

  readonly streams = new Map<number, Stream>();
  readonly sendQueue: number[] = [];
  readonly nextLocalIndex: Record<Dir, number> = { bi: 0, uni: 0 };
  readonly peerMaxStreams: Record<Dir, number> = { bi: 0, uni: 0 };
  readonly localMaxStreams: Record<Dir, number>;
  readonly remoteOpened: Record<Dir, number> = { bi: 0, uni: 0 };
  readonly maxStreamsPending: Record<Dir, boolean> = { bi: false, uni: false };
  readonly streamsBlockedPending: Record<Dir, number | undefined> = { bi: undefined, uni: undefined };
  readonly remoteClosedCount: Record<Dir, number> = { bi: 0, uni: 0 };
  /**
   * Set whenever a stream may owe a control frame (MAX_STREAM_DATA, RESET_STREAM,
   * STOP_SENDING, STREAM_DATA_BLOCKED), so the per-packet scan of all streams only runs then.
   */
  controlDirty = false;
  #peerParams: TransportParameters | undefined;

  constructor(side: 'client' | 'server', settings: ConnectionSettings, events: ConnectionEvent[], rtt: () => number, now: () => number) {
    this.#side = side;
    this.#settings = settings;
    this.#events = events;
    this.#rtt = rtt;
    this.#now = now;
    this.localMaxData = settings.receiveWindow;
    this.localDataWindow = settings.receiveWindow;
    this.setRecvMemoryLimit();
    this.localMaxStreams = { bi: settings.maxConcurrentBidiStreams, uni: settings.maxConcurrentUniStreams };
  }

  /** The peer's transport parameters arrived: credit and stream limits. */
  applyPeerParams(p: TransportParameters): void {
    this.#peerParams = p;
    this.peerMaxData = p.initialMaxData;
    this.peerMaxStreams.bi = p.initialMaxStreamsBidi;
    this.peerMaxStreams.uni = p.initialMaxStreamsUni;
  }

  /** After the idle timeout is known: credit of streams opened before the parameters arrived. */
  applyPeerStreamCredit(p: TransportParameters): void {
    for (const s of this.streams.values()) {
      if (s.send && streamInitiator(s.id) === this.#side) s.send.maxData = streamDir(s.id) === 'bi' ? p.initialMaxStreamDataBidiRemote : p.initialMaxStreamDataUni;
    }
    if (p.initialMaxStreamsBidi > 0) this.#events.push({ type: 'streams-available', dir: 'bi' });
    if (p.initialMaxStreamsUni > 0) this.#events.push({ type: 'streams-available', dir: 'uni' });
  }

  // ---------------------------------------------------------------- application commands

  /** Open a stream; undefined if the peer's stream limit is reached (a STREAMS_BLOCKED is queued). */
  openStream(dir: Dir): number | undefined {
    const index = this.nextLocalIndex[dir];
    if (index >= this.peerMaxStreams[dir]) {
      this.streamsBlockedPending[dir] = this.peerMaxStreams[dir];
      return undefined;
    }
    this.nextLocalIndex[dir] = index + 1;
    const id = streamId(index, this.#side, dir);
    this.#createStream(id);
    return id;
  }

  availableStreams(dir: Dir): number {
    return Math.max(0, this.peerMaxStreams[dir] - this.nextLocalIndex[dir]);
  }

  writeStream(id: number, data: Uint8Array): number {
    const send = this.#sendSide(id);
    if (send.fin || send.resetCode !== undefined) throw new Error(`Stream ${id} is closed for writing`);
    const n = Math.min(data.length, send.capacity(this.#settings.streamSendBuffer));
    if (n > 0) {
      send.buffer.write(n === data.length ? data : data.subarray(0, n));
      this.queueStream(id);
    }
    // Remember to announce 'stream-writable' once space frees up.
    if (n < data.length) send.writeBlocked = true;
    return n;
  }

  writableBytes(id: number): number {
    const s = this.streams.get(id)?.send;
    return s === undefined ? 0 : s.capacity(this.#settings.streamSendBuffer);
  }

  finishStream(id: number): void {
    const send = this.#sendSide(id);
    if (send.fin || send.resetCode !== undefined) return;
    send.fin = true;
    this.queueStream(id);
  }

  resetStream(id: number, code: number): void {
    const send = this.streams.get(id)?.send;
    if (send === undefined || send.resetCode !== undefined || send.state === 'data-recvd') return;
    send.resetCode = code;
    // RFC 9000 §4.5, §19.4: the final size is the highest offset sent (what the peer's flow
    // control was charged), read before clear() marks the unsent rest as sent.
    send.resetFinalSize = send.buffer.unsent;
    send.resetPending = true;
    this.controlDirty = true;
    send.state = 'reset-sent';
    send.buffer.clear();
  }

  stopSending(id: number, code: number): void {
    const recv = this.streams.get(id)?.recv;
    if (recv === undefined || recv.finished || recv.stopSendingCode !== undefined) return;
    recv.stopSendingCode = code;
    if (recv.resetCode !== undefined) {
      // Reset Recvd: the peer already abandoned the stream; there is nothing to ask (RFC 9000 §3.5).
      recv.state = 'reset-read';
      this.#maybeFreeStream(id);
      return;
    }
    // Discard what is buffered and give the credit back, so the peer is not blocked on it.
    // The stream stays until its final size is known: data still in flight is counted toward
    // connection flow control as it arrives (RFC 9000 §4.5), and the STOP_SENDING frame is
    // sent, and repeated when lost, until Data Recvd or Reset Recvd (§3.5, §13.3).
    recv.buffer.clear();
    this.#creditStopped(id, recv);
    if (!recv.finished) {
      recv.stopSendingPending = true;
      this.controlDirty = true;
    }
  }

  /** Count a stream's bytes below `offset` as consumed by the connection's flow control (RFC 9000 §4.1). */
  #credit(recv: StreamRecv, offset: number): void {
    if (offset <= recv.credited) return;
    this.readTotal += offset - recv.credited;
    recv.credited = offset;
  }

  /**
   * A stream we sent STOP_SENDING for: everything up to its highest offset (or final size) is
   * consumed; once all of it has arrived the stream is done.
   */
  #creditStopped(id: number, recv: StreamRecv): void {
    this.#credit(recv, recv.finalSize ?? recv.buffer.highest);
    this.maybeUpdateConnectionWindow();
    if (recv.state === 'data-recvd') {
      recv.state = 'data-read';
      this.#maybeFreeStream(id);
    }
  }

  readStream(id: number, max = Infinity): { data?: Uint8Array; fin: boolean; resetCode?: number } {
    const stream = this.streams.get(id);
    const recv = stream?.recv;
    // Unknown (not yet opened by the peer, or already finished and forgotten): nothing to read.
    if (recv === undefined || recv.stopSendingCode !== undefined) return { fin: false };
    recv.readableNotified = false;
    if (recv.resetCode !== undefined) {
      if (recv.state === 'reset-recvd') {
        recv.state = 'reset-read';
        this.#maybeFreeStream(id);
      }
      return { fin: true, resetCode: recv.resetCode };
    }
    const data = recv.buffer.read(max);
    if (data !== undefined) {
      this.#credit(recv, recv.buffer.readOffset);
      this.#onStreamConsumed(id, recv);
    }
    const fin = recv.finalSize !== undefined && recv.buffer.readOffset === recv.finalSize;
    if (fin && recv.state !== 'data-read') {
      recv.state = 'data-read';
      this.#maybeFreeStream(id);
    }
    return data === undefined ? { fin } : { data, fin };
  }

  isReadable(id: number): boolean {
    const recv = this.streams.get(id)?.recv;
    if (recv === undefined) return false;
    if (recv.resetCode !== undefined) return recv.state === 'reset-recvd';
    return recv.buffer.readable > 0 || (recv.finalSize !== undefined && recv.buffer.readOffset === recv.finalSize && recv.state !== 'data-read');
  }

  stopCode(id: number): number | undefined {
    return this.streams.get(id)?.send?.stopCode;
  }

  // ---------------------------------------------------------------- frames from the peer

  onMaxData(max: number): void {
    if (max > this.peerMaxData) {
      this.peerMaxData = max;
      this.#wakeWriters();
    }
  }

  onMaxStreamData(id: number, max: number, wireType: number): void {
    this.#checkStreamFrame(id, 'send', wireType);
    const send = this.#getOrOpenStream(id, wireType)?.send;
    if (send && max > send.maxData) {
      send.maxData = max;
      if (send.buffer.hasSendable(send.maxData)) this.queueStream(id);
    }
  }

  onStreamDataBlocked(id: number, wireType: number): void {
    this.#checkStreamFrame(id, 'recv', wireType);
    // RFC 9000 §3.2: it opens a peer's stream (and the lower ones); §4.6: beyond our
    // MAX_STREAMS → STREAM_LIMIT_ERROR; §19.8: a local stream not yet opened → STREAM_STATE_ERROR.
    this.#getOrOpenStream(id, wireType);
  }

  /** RFC 9000 §19.8 etc.: a frame for a stream direction that cannot exist → STREAM_STATE_ERROR. */
  #checkStreamFrame(id: number, need: 'send' | 'recv', wireType: number): void {
    const local = streamInitiator(id) === this.#side;
    const uni = streamDir(id) === 'uni';
    // "recv" frames (STREAM, RESET_STREAM, STREAM_DATA_BLOCKED) need a stream we receive on;
    // "send" frames (MAX_STREAM_DATA, STOP_SENDING) one we send on.
    if (uni && ((need === 'recv' && local) || (need === 'send' && !local))) {
      throw new TransportError(TransportErrorCode.STREAM_STATE_ERROR, `frame for the wrong direction of uni stream ${id}`, wireType);
    }
  }

  #getOrOpenStream(id: number, wireType: number): Stream | undefined {
    const existing = this.streams.get(id);
    if (existing) return existing;
    const dir = streamDir(id);
    const index = streamIndex(id);
    if (streamInitiator(id) === this.#side) {
      // RFC 9000 §19.8: a frame for a local stream not yet opened → STREAM_STATE_ERROR; closed ones are ignored.
      if (index >= this.nextLocalIndex[dir]) throw new TransportError(TransportErrorCode.STREAM_STATE_ERROR, `frame for unopened local stream ${id}`, wireType);
      return undefined;
    }
    // RFC 9000 §4.6: beyond our MAX_STREAMS → STREAM_LIMIT_ERROR.
    if (index >= this.localMaxStreams[dir]) throw new TransportError(TransportErrorCode.STREAM_LIMIT_ERROR, `peer opened stream ${id} beyond the limit`, wireType);
    if (index < this.remoteOpened[dir]) return undefined; // already closed and forgotten
    // RFC 9000 §3.2: opening a stream opens every lower one of the same type.
    for (let i = this.remoteOpened[dir]; i <= index; i++) {
      const sid = streamId(i, streamInitiator(id), dir);
      this.#createStream(sid);
      this.#events.push({ type: 'stream-opened', id: sid });
    }
    this.remoteOpened[dir] = index + 1;
    return this.streams.get(id);
  }

  #createStream(id: number): void {
    const local = streamInitiator(id) === this.#side;
    const dir = streamDir(id);
    const p = this.#peerParams;
    const s = this.#settings;
    const hasSend = dir === 'bi' || local;
    const hasRecv = dir === 'bi' || !local;
    const sendCredit = p === undefined ? 0 : dir === 'uni' ? p.initialMaxStreamDataUni : local ? p.initialMaxStreamDataBidiRemote : p.initialMaxStreamDataBidiLocal;
    const stream = new Stream(id, hasSend ? new StreamSend(sendCredit) : undefined, hasRecv ? new StreamRecv(s.streamReceiveWindow, this.recvBudget) : undefined);
    this.streams.set(id, stream);
  }

  onStreamFrame(frame: Extract<Frame, { type: 'stream' }>, wireType: number): void {
    this.#checkStreamFrame(frame.id, 'recv', wireType);
    const stream = this.#getOrOpenStream(frame.id, wireType);
    const recv = stream?.recv;
    if (recv === undefined) return;
    const grown = recv.onData(frame.offset, frame.data, frame.fin, wireType);
    this.recvTotal += grown;
    // RFC 9000 §4.1: more than MAX_DATA in total → FLOW_CONTROL_ERROR.
    if (this.recvTotal > this.localMaxData) throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'connection data beyond MAX_DATA', wireType);
    if (recv.stopSendingCode !== undefined) {
      // Data after STOP_SENDING is discarded, but counted: its credit goes straight back (RFC 9000 §4.5).
      this.#creditStopped(frame.id, recv);
      return;
    }
    if (!recv.readableNotified && this.isReadable(frame.id)) {
      recv.readableNotified = true;
      this.#events.push({ type: 'stream-readable', id: frame.id });
    }
  }

  onResetStream(id: number, code: number, finalSize: number, wireType: number): void {
    this.#checkStreamFrame(id, 'recv', wireType);
    const recv = this.#getOrOpenStream(id, wireType)?.recv;
    if (recv === undefined) return;
    if (recv.resetCode !== undefined) {
      // RFC 9000 §4.5: a repeated RESET_STREAM may not change the final size.
      if (finalSize !== recv.finalSize) throw new TransportError(TransportErrorCode.FINAL_SIZE_ERROR, 'RESET_STREAM changes the final size of a reset stream', wireType);
      return;
    }
    // RFC 9000 §4.5: the final size may not change or fall below data received.
    if ((recv.finalSize !== undefined && recv.finalSize !== finalSize) || finalSize < recv.buffer.highest) {
      throw new TransportError(TransportErrorCode.FINAL_SIZE_ERROR, 'RESET_STREAM final size conflicts with received data', wireType);
    }
    if (finalSize > recv.maxData) throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'RESET_STREAM final size beyond MAX_STREAM_DATA', wireType);
    this.recvTotal += finalSize - recv.buffer.highest;
    if (this.recvTotal > this.localMaxData) throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'connection data beyond MAX_DATA', wireType);
    // The whole final size counts as consumed (RFC 9000 §4.5).
    this.#credit(recv, finalSize);
    recv.buffer.clear();
    recv.finalSize = finalSize;
    recv.resetCode = code;
    recv.stopSendingPending = false;
    if (recv.state === 'reset-read' || recv.stopSendingCode !== undefined) {
      recv.state = 'reset-read';
      this.#maybeFreeStream(id);
    } else {
      recv.state = 'reset-recvd';
      this.#events.push({ type: 'stream-readable', id });
    }
    this.maybeUpdateConnectionWindow();
  }

  onStopSending(id: number, code: number, wireType: number): void {
    this.#checkStreamFrame(id, 'send', wireType);
    const send = this.#getOrOpenStream(id, wireType)?.send;
    if (send === undefined) return;
    if (send.stopCode === undefined) {
      send.stopCode = code;
      this.#events.push({ type: 'stream-stopped', id, code });
    }
    // RFC 9000 §3.5: answer STOP_SENDING with RESET_STREAM.
    if (send.resetCode === undefined && send.state !== 'data-recvd') this.resetStream(id, code);
  }

  onMaxStreams(dir: Dir, max: number): void {
    if (max > this.peerMaxStreams[dir]) {
      this.peerMaxStreams[dir] = max;
      this.#events.push({ type: 'streams-available', dir });
    }
  }

  #onStreamConsumed(id: number, recv: StreamRecv): void {
    // Stream window: top up once half of it has been read; grow it when it was used up in under 2 RTT.
    const now = this.#now();
    if (recv.finalSize === undefined && recv.maxData - recv.buffer.readOffset < recv.window / 2) {
      if (now - recv.lastWindowUpdate < 2 * this.#rtt() && recv.window < this.#settings.maxStreamReceiveWindow) {
        recv.window = Math.min(recv.window * 2, this.#settings.maxStreamReceiveWindow);
      }
      recv.lastWindowUpdate = now;
      recv.maxData = recv.buffer.readOffset + recv.window;
      recv.maxDataPending = true;
      this.controlDirty = true;
    }
    this.maybeUpdateConnectionWindow();
    void id;
  }

  maybeUpdateConnectionWindow(): void {
    const now = this.#now();
    if (this.localMaxData - this.readTotal < this.localDataWindow / 2) {
      if (now - this.lastDataWindowUpdate < 2 * this.#rtt() && this.localDataWindow < this.#settings.maxReceiveWindow) {
        this.localDataWindow = Math.min(this.localDataWindow * 2, this.#settings.maxReceiveWindow);
        this.setRecvMemoryLimit();
      }
      this.lastDataWindowUpdate = now;
      this.localMaxData = this.readTotal + this.localDataWindow;
      this.maxDataPending = true;
    }
  }

  /**
   * The connection-level receive-memory budget: flow control bounds stored stream bytes by the
   * connection window; half as much again covers chunk overhead, plus CRYPTO and DATAGRAMs.
   */
  setRecvMemoryLimit(): void {
    this.recvBudget.maxMemory = this.localDataWindow * 1.5 + RECV_MEMORY_SLACK;
  }

  /** Forget a stream once both sides are finished; credit the peer a new one (RFC 9000 §4.6). */
  #maybeFreeStream(id: number): void {
    const stream = this.streams.get(id);
    if (stream === undefined || !stream.closed) return;
    this.streams.delete(id);
    stream.recv?.buffer.release();
    if (streamInitiator(id) !== this.#side) {
      const dir = streamDir(id);
      this.remoteClosedCount[dir]++;
      this.localMaxStreams[dir] = this.remoteClosedCount[dir] + (dir === 'bi' ? this.#settings.maxConcurrentBidiStreams : this.#settings.maxConcurrentUniStreams);
      this.maxStreamsPending[dir] = true;
    }
  }

  #sendSide(id: number): StreamSend {
    const send = this.streams.get(id)?.send;
    if (send === undefined) throw new Error(`Stream ${id} cannot be written (unknown or receive-only)`);
    return send;
  }

  queueStream(id: number): void {
    const stream = this.streams.get(id);
    if (stream === undefined || stream.queued) return;
    stream.queued = true;
    this.sendQueue.push(id);
  }

  #wakeWriters(): void {
    for (const s of this.streams.values()) {
      if (s.send && s.send.buffer.hasSendable(s.send.maxData)) this.queueStream(s.id);
    }
  }

  hasStreamData(): boolean {
    return this.sendQueue.length > 0;
  }

  /** A stream may owe a control frame (cleared once a scan finds none). */
  hasStreamControl(): boolean {
    if (!this.controlDirty) return false;
    for (const s of this.streams.values()) {
      if (s.send?.resetPending || s.recv?.stopSendingPending || s.recv?.maxDataPending || s.send?.blockedAt !== undefined) return true;
    }
    this.controlDirty = false;
    return false;
  }

  /** A connection-level flow-control frame is owed. */
  get flowControlPending(): boolean {
    return (
      this.maxDataPending ||
      this.maxStreamsPending.bi ||
      this.maxStreamsPending.uni ||
      this.streamsBlockedPending.bi !== undefined ||
      this.streamsBlockedPending.uni !== undefined ||
      this.dataBlockedAt !== undefined
    );
  }

  // ---------------------------------------------------------------- writing frames

  /** MAX_DATA, MAX_STREAMS, STREAMS_BLOCKED, DATA_BLOCKED. */
  fillFlowControl(sink: ControlSink): void {
    if (this.maxDataPending && sink.put({ type: 'max_data', max: this.localMaxData }, { k: 'max_data' })) this.maxDataPending = false;
    for (const dir of ['bi', 'uni'] as const) {
      if (this.maxStreamsPending[dir] && sink.put({ type: 'max_streams', bidi: dir === 'bi', max: this.localMaxStreams[dir] }, { k: 'max_streams', dir })) {
        this.maxStreamsPending[dir] = false;
      }
      const blocked = this.streamsBlockedPending[dir];
      if (blocked !== undefined && sink.put({ type: 'streams_blocked', bidi: dir === 'bi', limit: blocked }, { k: 'streams_blocked', dir })) {
        this.streamsBlockedPending[dir] = undefined;
      }
    }
    if (this.dataBlockedAt !== undefined && sink.put({ type: 'data_blocked', limit: this.dataBlockedAt }, { k: 'data_blocked' })) this.dataBlockedAt = undefined;
  }

  /** MAX_STREAM_DATA, STOP_SENDING, RESET_STREAM, STREAM_DATA_BLOCKED of each stream that owes one. */
  fillStreamControl(sink: ControlSink): void {
    let stillPending = false;
    for (const s of this.controlDirty ? this.streams.values() : []) {
      const recv = s.recv;
      if (recv?.maxDataPending && sink.put({ type: 'max_stream_data', id: s.id, max: recv.maxData }, { k: 'max_stream_data', id: s.id })) recv.maxDataPending = false;
      if (recv?.stopSendingPending && recv.stopSendingCode !== undefined && sink.put({ type: 'stop_sending', id: s.id, code: recv.stopSendingCode }, { k: 'stop_sending', id: s.id })) {
        recv.stopSendingPending = false;
      }
      const send = s.send;
      if (send?.resetPending && send.resetCode !== undefined && sink.put({ type: 'reset_stream', id: s.id, code: send.resetCode, finalSize: send.resetFinalSize }, { k: 'reset_stream', id: s.id })) {
        send.resetPending = false;
      }
      if (send?.blockedAt !== undefined && sink.put({ type: 'stream_data_blocked', id: s.id, limit: send.blockedAt }, { k: 'stream_data_blocked', id: s.id })) send.blockedAt = undefined;
      if (recv?.maxDataPending || recv?.stopSendingPending || send?.resetPending || send?.blockedAt !== undefined) stillPending = true;
    }
    if (this.controlDirty && !stillPending) this.controlDirty = false;
  }

  /** Stream data, round-robin over the streams that have some, as much as fits. */
  fillStreams(w: FixedWriter, frames: FrameRecord[]): boolean {
    let any = false;
    let rounds = this.sendQueue.length;
    while (rounds-- > 0 && w.remaining > 8) {
      const id = this.sendQueue.shift()!;
      const stream = this.streams.get(id);
      if (stream === undefined || stream.send === undefined) continue;
      stream.queued = false;
      const send = stream.send;
      if (send.resetCode !== undefined) continue;
      const connCredit = this.peerMaxData - this.sentTotal;
      // New bytes are limited by the stream's and the connection's credit; retransmissions are not.
      const newLimit = Math.min(send.maxData, send.buffer.unsent + Math.max(0, connCredit));
      const overhead = streamFrameOverhead(id, send.buffer.end, Math.min(w.remaining, 0x3fff));
      let wrote = false;
      if (w.remaining > overhead) {
        const range = send.buffer.nextRange(w.remaining - overhead, newLimit);
        if (range !== undefined) {
          const end = range.offset + range.length;
          const fin = send.fin && end === send.buffer.end;
          writeStreamHeader(w, id, range.offset, range.length, fin);
          send.buffer.copyTo(range.offset, range.length, w.buf, w.pos);
          w.pos += range.length;
          if (!range.retransmit) this.sentTotal += range.length;
          if (fin) send.finSent = true;
          frames.push({ k: 'stream', id, offset: range.offset, length: range.length, fin });
          wrote = true;
          any = true;
        }
      }
      if (!wrote && send.fin && !send.finSent && send.buffer.unsent === send.buffer.end && !send.buffer.hasRetransmits) {
        // A bare FIN.
        const o = streamFrameOverhead(id, send.buffer.end, 0);
        if (w.remaining >= o) {
          writeStreamHeader(w, id, send.buffer.end, 0, true);
          send.finSent = true;
          frames.push({ k: 'stream', id, offset: send.buffer.end, length: 0, fin: true });
          any = true;
          wrote = true;
        }
      }
      // Blocked by flow control? Say so, once per limit (RFC 9000 §4.1: SHOULD send *_BLOCKED).
      if (send.buffer.unsent < send.buffer.end && send.buffer.unsent >= send.maxData && send.blockedReported !== send.maxData) {
        send.blockedAt = send.maxData;
        send.blockedReported = send.maxData;
        this.controlDirty = true;
      }
      if (send.buffer.unsent < send.buffer.end && connCredit <= 0 && this.dataBlockedReported !== this.peerMaxData) {
        this.dataBlockedAt = this.peerMaxData;
        this.dataBlockedReported = this.peerMaxData;
      }
      // A FIN waits in the queue only once everything before it has gone out; until then the
      // credit that lets the data go (MAX_DATA / MAX_STREAM_DATA) queues the stream again.
      const more = send.buffer.hasSendable(newLimit) || (send.fin && !send.finSent && send.buffer.unsent === send.buffer.end);
      if (more) this.queueStream(id);
    }
    return any;
  }

  // ---------------------------------------------------------------- acknowledged and lost frames

  /** A frame about streams was acknowledged. */
  onFrameAcked(f: FrameRecord): void {
    switch (f.k) {
      case 'stream': {
        const send = this.streams.get(f.id)?.send;
        if (send === undefined) break;
        send.buffer.onAck(f.offset, f.length);
        if (f.fin) send.finAcked = true;
        if (send.finAcked && send.buffer.allAcked && send.state !== 'reset-sent' && send.state !== 'data-recvd') {
          send.state = 'data-recvd';
          this.#events.push({ type: 'stream-finished', id: f.id });
          this.#maybeFreeStream(f.id);
        }
        // Wake a blocked writer once a quarter of the buffer is free, not for every acknowledged
        // packet (each wake-up is a promise round trip for a few hundred bytes).
        if (send.writeBlocked && send.capacity(this.#settings.streamSendBuffer) >= this.#settings.streamSendBuffer / 4) {
          send.writeBlocked = false;
          this.#events.push({ type: 'stream-writable', id: f.id });
        }
        break;
      }
      case 'reset_stream': {
        const send = this.streams.get(f.id)?.send;
        if (send) {
          send.state = 'reset-recvd';
          this.#maybeFreeStream(f.id);
        }
        break;
      }
      default:
        break;
    }
  }

  /** A frame about streams or flow control was lost: queue it (or what it carried) again (RFC 9000 §13.3). */
  onFrameLost(f: FrameRecord): void {
    switch (f.k) {
      case 'stream': {
        const send = this.streams.get(f.id)?.send;
        if (send === undefined || send.resetCode !== undefined) break;
        send.buffer.onLost(f.offset, f.length);
        if (f.fin && !send.finAcked) send.finSent = false;
        this.queueStream(f.id);
        break;
      }
      case 'max_data':
        this.maxDataPending = true;
        break;
      case 'max_stream_data': {
        const recv = this.streams.get(f.id)?.recv;
        if (recv && !recv.finished && recv.finalSize === undefined && recv.stopSendingCode === undefined) {
          recv.maxDataPending = true;
          this.controlDirty = true;
        }
        break;
      }
      case 'max_streams':
        this.maxStreamsPending[f.dir] = true;
        break;
      case 'data_blocked':
        if (this.dataBlockedAt === undefined) this.dataBlockedAt = this.peerMaxData;
        break;
      case 'reset_stream': {
        const send = this.streams.get(f.id)?.send;
        if (send && send.state === 'reset-sent') {
          send.resetPending = true;
          this.controlDirty = true;
        }
        break;
      }
      case 'stop_sending': {
        const recv = this.streams.get(f.id)?.recv;
        if (recv && recv.stopSendingCode !== undefined && recv.resetCode === undefined) {
          recv.stopSendingPending = true;
          this.controlDirty = true;
        }
        break;
      }
      default:
        break;
    }
  }

  /** PTO probe (RFC 9002 §6.2.4): send a packet's stream data again. */
  retransmit(f: FrameRecord): void {
    if (f.k !== 'stream') return;
    const send = this.streams.get(f.id)?.send;
    if (send && send.resetCode === undefined) {
      send.buffer.onLost(f.offset, f.length);
      this.queueStream(f.id);
    }
  }
}
