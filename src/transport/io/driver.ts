/**
 * The driver around the sans-IO endpoint: feeds it datagrams and the time, sends what it
 * produces, keeps one timer armed to its earliest deadline, and hands connection events to
 * whoever listens. After any input or application command, {@link EndpointDriver.schedule}
 * batches the drain into one pass (quinn's order: transmits, then timer, then events).
 *
 * @module
 */
import type { QuicEndpoint } from '../quic/endpoint.ts';
import type { Connection } from '../quic/connection/connection.ts';
import type { ConnectionEvent, PathAddr } from '../quic/connection/types.ts';
import { monotonicClock, type Clock } from './clock.ts';

/** Where the driver sends datagrams. */
export interface DatagramSender {
  send(data: Uint8Array, path: PathAddr): void;
  /** Called after each batch of sends (a relay sends what it gathered as one frame). */
  flush?(): void;
}

/** Most datagrams sent in one drain before yielding to the event loop (reliability.md §5.L.5). */
const MAX_SENDS_PER_DRAIN = 256;

export class EndpointDriver {
  readonly quic: QuicEndpoint;
  readonly clock: Clock;
  readonly #sender: DatagramSender;
  readonly #listeners = new Map<Connection, (event: ConnectionEvent) => void>();
  #onIncoming: ((connection: Connection) => void) | undefined;
  #scheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #immediate: ReturnType<typeof setImmediate> | undefined;
  #timerAt = Infinity;
  #closed = false;
  /** Unexpected exceptions caught at the boundary (each closed one connection or dropped a datagram). */
  internalErrors = 0;

  constructor(quic: QuicEndpoint, sender: DatagramSender, clock: Clock = monotonicClock) {
    this.quic = quic;
    this.#sender = sender;
    this.clock = clock;
  }

  /** Called for each new server-side connection. */
  onIncoming(listener: (connection: Connection) => void): void {
    this.#onIncoming = listener;
  }

  /** Receive the events of `connection`. */
  listen(connection: Connection, listener: (event: ConnectionEvent) => void): void {
    this.#listeners.set(connection, listener);
  }

  /** A datagram arrived. */
  receive(data: Uint8Array, path: PathAddr): void {
    if (this.#closed) return;
    try {
      this.quic.handleDatagram(this.clock.now(), path, data);
    } catch (err) {
      // A hostile datagram must never escape into the event loop (reliability.md §5.L.1).
      this.internalErrors++;
      void err;
    }
    this.schedule();
  }

  /** Drain soon (coalesces many inputs and commands into one pass). */
  schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.drain();
    });
  }

  /** Process timers, send everything due, deliver events, re-arm the timer. */
  drain(): void {
    if (this.#closed) return;
    let now = this.clock.now();
    const due = this.quic.pollTimeout();
    if (due !== undefined && due <= now) this.quic.handleTimeout(now);
    let sent = 0;
    for (let t = this.quic.pollTransmit(now); t !== undefined; t = this.quic.pollTransmit(now)) {
      this.#sender.send(t.data, t.path);
      if (++sent >= MAX_SENDS_PER_DRAIN) {
        this.schedule();
        break;
      }
    }
    this.#sender.flush?.();
    for (let c = this.quic.pollIncoming(); c !== undefined; c = this.quic.pollIncoming()) this.#onIncoming?.(c);
    for (const c of [...this.#listeners.keys()]) {
      const listener = this.#listeners.get(c)!;
      for (let e = c.pollEvent(); e !== undefined; e = c.pollEvent()) listener(e);
      if (c.isClosed) this.#listeners.delete(c);
    }
    now = this.clock.now();
    this.#arm(now);
  }

  #arm(now: number): void {
    const at = this.quic.pollTimeout();
    if (at === undefined) {
      this.#clearTimer();
      return;
    }
    if (at === this.#timerAt && (this.#timer || this.#immediate)) return;
    this.#clearTimer();
    this.#timerAt = at;
    const delay = at - now;
    if (delay < 1000) {
      // Sub-millisecond deadlines (pacing, immediate ACKs): Node timers have 1 ms resolution.
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        this.#timerAt = Infinity;
        this.drain();
      });
    } else {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.drain();
      }, Math.floor(delay / 1000));
    }
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#timerAt = Infinity;
  }

  close(): void {
    this.#closed = true;
    this.#clearTimer();
    this.#listeners.clear();
  }
}
