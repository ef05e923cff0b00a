/**
 * The driver around the sans-IO endpoint: feeds it datagrams and the time, sends what it
 * produces, keeps one timer armed to its earliest deadline, and hands connection events to
 * whoever listens. After any input or application command, {@link EndpointDriver.schedule}
 * batches the drain into one pass: due timers, handshake flights, events, and, in the next
 * pass (after the application reacted), everything else (see {@link EndpointDriver.drain}).
 *
 * A pass that did no work (sent nothing, delivered nothing) never schedules an immediate pass:
 * a deadline the core could not serve waits for a real timer, and longer each time it stays
 * due, so a core stuck on a deadline cannot spin the event loop (issue 11 item 2).
 *
 * @module
 */
import type { QuicEndpoint } from '../quic/endpoint.ts';
import type { Connection } from '../quic/connection/connection.ts';
import type { ConnectionEvent, PathAddr } from '../quic/connection/types.ts';
import { monotonicClock, type Clock } from './clock.ts';
import { cancelImmediate, scheduleImmediate, type ImmediateHandle } from './immediate.ts';

/** Where the driver sends datagrams. */
export interface DatagramSender {
  send(data: Uint8Array, path: PathAddr): void;
  /** Called after each batch of sends (a relay sends what it gathered as one frame). */
  flush?(): void;
}

/** Most datagrams sent in one drain before yielding to the event loop (reliability.md §5.L.5). */
const MAX_SENDS_PER_DRAIN = 256;
/** Longest wait for a deadline that stays due pass after pass without any work done, ms. */
const MAX_STALE_BACKOFF_MS = 1000;

export class EndpointDriver {
  readonly quic: QuicEndpoint;
  readonly clock: Clock;
  readonly #sender: DatagramSender;
  readonly #listeners = new Map<Connection, (event: ConnectionEvent) => void>();
  #onIncoming: ((connection: Connection) => void) | undefined;
  #scheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #immediate: ImmediateHandle | undefined;
  #timerAt = Infinity;
  #closed = false;
  /** Unexpected exceptions caught at the boundary (each closed one connection or dropped a datagram). */
  internalErrors = 0;
  /** Drain passes run, and timers armed for deadlines (immediate and timed): diagnostics. */
  readonly counters = { passes: 0, immediates: 0, timeouts: 0 };
  /** Consecutive idle passes that found their deadline already due (backoff exponent). */
  #stalePasses = 0;

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
    scheduleImmediate(() => {
      this.#scheduled = false;
      this.drain();
    });
  }

  /**
   * Process timers, deliver events, send everything due, re-arm the timer.
   *
   * After the handshake flights, events go first, and a pass that delivered some sends
   * nothing more yet: it schedules the next pass and returns, so the application's reactions
   * (promise continuations run before the next immediate) are queued before we build
   * datagrams. A reply then leaves in the datagram that carries our ACK and whatever else we
   * owe (a server's HANDSHAKE_DONE and connection IDs), instead of one datagram each
   * (issue 11 item 8).
   */
  drain(): void {
    if (this.#closed) return;
    this.counters.passes++;
    let now = this.clock.now();
    const due = this.quic.pollTimeout();
    if (due !== undefined && due <= now) this.quic.handleTimeout(now);
    // Handshake flights leave before anything is delivered: the peer waits for them and works
    // on them while the application reacts (measured: holding a client's Finished back for
    // its first request made the first echo from an iroh server 35 % slower).
    let sent = this.#send(now, true);
    let delivered = this.#deliver();
    if (delivered > 0 && !this.#yielded) {
      if (sent > 0) this.#sender.flush?.();
      this.#yielded = true;
      this.schedule();
      return;
    }
    this.#yielded = false;
    sent += this.#send(now, false);
    this.#sender.flush?.();
    delivered += this.#deliver();
    now = this.clock.now();
    this.#arm(now, sent > 0 || delivered > 0);
    if (sent > 0) this.#schedulePrepare();
  }

  #prepareScheduled = false;

  /**
   * After we sent something, the answer takes a round trip: work ahead of need (the next
   * handshake's ephemeral key) in that wait, unless a pass is already due.
   */
  #schedulePrepare(): void {
    if (this.#prepareScheduled) return;
    this.#prepareScheduled = true;
    scheduleImmediate(() => {
      this.#prepareScheduled = false;
      if (this.#closed || this.#scheduled) return;
      try {
        this.quic.prepare();
      } catch {
        this.internalErrors++;
      }
    });
  }

  /** Send what the endpoint has (only handshake flights with `handshakeOnly`); returns how many datagrams. */
  #send(now: number, handshakeOnly: boolean): number {
    let sent = 0;
    for (let t = this.quic.pollTransmit(now, handshakeOnly); t !== undefined; t = this.quic.pollTransmit(now, handshakeOnly)) {
      this.#sender.send(t.data, t.path);
      if (++sent >= MAX_SENDS_PER_DRAIN) {
        this.schedule();
        break;
      }
    }
    return sent;
  }

  /** Whether the pass before this one delivered events and left its sending to this one. */
  #yielded = false;

  /** New connections and connection events to their listeners; returns how many. */
  #deliver(): number {
    let delivered = 0;
    for (let c = this.quic.pollIncoming(); c !== undefined; c = this.quic.pollIncoming()) {
      delivered++;
      this.#guard(c, () => this.#onIncoming?.(c));
    }
    // forEach: no [key, value] array per connection and pass (50 KiB of garbage per connect
    // in a loop with ~25 connections draining); deleting the entry being visited is safe.
    // No closure per event either (a `let` captured in the loop costs a context per pass).
    this.#listeners.forEach((listener, c) => {
      let e = c.pollEvent();
      while (e !== undefined) {
        delivered++;
        this.#deliverEvent(c, listener, e);
        e = c.pollEvent();
      }
      if (c.isClosed) this.#listeners.delete(c);
    });
    return delivered;
  }

  /**
   * Deliver to the layer above; an exception escaping it (a bug there) closes that one
   * connection with INTERNAL_ERROR and is counted, instead of leaving the pass half done and
   * the exception loose in the event loop (issue 11 item 1).
   */
  #guard(c: Connection, deliver: () => void): void {
    try {
      deliver();
    } catch (err) {
      this.#failed(c, err);
    }
  }

  /** {@link #guard} for one connection event, without a closure. */
  #deliverEvent(c: Connection, listener: (event: ConnectionEvent) => void, e: ConnectionEvent): void {
    try {
      listener(e);
    } catch (err) {
      this.#failed(c, err);
    }
  }

  #failed(c: Connection, err: unknown): void {
    this.internalErrors++;
    if (!c.isClosed) c.failInternal(this.clock.now(), err);
    this.schedule();
  }

  #arm(now: number, worked: boolean): void {
    const at = this.quic.pollTimeout();
    if (worked) this.#stalePasses = 0;
    if (at === undefined) {
      this.#clearTimer();
      return;
    }
    if (at === this.#timerAt && (this.#timer || this.#immediate)) return;
    this.#clearTimer();
    this.#timerAt = at;
    const delay = at - now;
    if (delay < 1000 && worked) {
      // Sub-millisecond deadlines right after a pass that did work (pacing, the next burst):
      // Node timers have 1 ms resolution.
      this.counters.immediates++;
      this.#immediate = scheduleImmediate(() => {
        this.#immediate = undefined;
        this.#timerAt = Infinity;
        this.drain();
      });
      return;
    }
    let ms = Math.max(1, Math.floor(delay / 1000));
    if (!worked && delay <= 0) {
      // Due, and this pass could not serve it (e.g. an endpoint blocked by the
      // anti-amplification limit): back off instead of waking up for nothing.
      ms = Math.min(2 ** this.#stalePasses, MAX_STALE_BACKOFF_MS);
      if (ms < MAX_STALE_BACKOFF_MS) this.#stalePasses++;
    } else if (!worked) {
      this.#stalePasses = 0;
    }
    this.counters.timeouts++;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.drain();
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) cancelImmediate(this.#immediate);
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
