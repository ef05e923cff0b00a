/**
 * The driver around the sans-IO endpoint: feeds it datagrams and the time, sends what it
 * produces, keeps one timer armed to its earliest deadline, and hands connection events to
 * whoever listens. After any input or application command, {@link EndpointDriver.schedule}
 * batches the drain into one pass (quinn's order: timer, transmits, then events; when data
 * arrived, the events first and the transmits once the application has reacted to them).
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

/** New connections and events taken from the core, not yet handed to their listeners. */
interface Pending {
  incoming: Connection[] | undefined;
  events: [Connection, ConnectionEvent][] | undefined;
}

/** Where the driver sends datagrams. */
export interface DatagramSender {
  send(data: Uint8Array, path: PathAddr): void;
  /** Called after each batch of sends (a relay sends what it gathered as one frame). */
  flush?(): void;
}

/** Most datagrams sent in one drain before yielding to the event loop (reliability.md §5.L.5). */
const MAX_SENDS_PER_DRAIN = 256;
/** Passes run at the end of a callback in a row before one waits for the event loop. */
const MAX_TICK_PASSES = 8;
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
  #immediate: ReturnType<typeof setImmediate> | undefined;
  #timerAt = Infinity;
  #closed = false;
  /** Unexpected exceptions caught at the boundary (each closed one connection or dropped a datagram). */
  internalErrors = 0;
  /** Drain passes run, and timers armed for deadlines (immediate and timed): diagnostics. */
  readonly counters = { passes: 0, immediates: 0, timeouts: 0 };
  /** Consecutive idle passes that found their deadline already due (backoff exponent). */
  #stalePasses = 0;
  /** Passes run from process.nextTick since the event loop last turned. */
  #tickPasses = 0;
  /** Events were delivered; the sends wait for the application's reactions to them. */
  #reacting = false;
  /** The last delivery included a client connection's 'connected'. */
  #clientConnected = false;
  /** The last delivery included stream data, a new stream or a datagram. */
  #dataArrived = false;

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
    // Every datagram of this poll phase is handled before the one pass that answers them.
    this.#scheduleImmediate();
  }

  /**
   * Drain soon: once the current callback and the promise reactions it caused have run, so an
   * application's writes, opens and closes coalesce into one pass and the packet leaves without
   * waiting for another turn of the event loop. After a few such passes in a row the next one
   * waits for the event loop, so received datagrams and timers are never starved.
   */
  schedule(): void {
    if (this.#scheduled || this.#closed) return;
    if (this.#tickPasses >= MAX_TICK_PASSES) return this.#scheduleImmediate();
    this.#scheduled = true;
    process.nextTick(this.#tickDrain);
  }

  readonly #tickDrain = (): void => {
    if (!this.#scheduled) return;
    this.#scheduled = false;
    this.#tickPasses++;
    this.drain();
  };

  #scheduleImmediate(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#tickPasses = 0;
      this.drain();
    });
  }

  /**
   * Process timers, send everything due, deliver events, re-arm the timer. When data arrived
   * (a stream, its data, a datagram), the events go first and the sends wait until the
   * application's reactions to them (promise reactions, within this turn of the event loop)
   * have run: a server's answer then leaves in the datagram that acknowledges the request (and
   * completes the handshake), instead of one datagram each.
   */
  drain(): void {
    if (this.#closed) return;
    this.counters.passes++;
    let now = this.clock.now();
    const due = this.quic.pollTimeout();
    if (due !== undefined && due <= now) this.quic.handleTimeout(now);
    const pending = this.#collect();
    // Never after a client's handshake completed: its Finished leaves before the application
    // can react (a close right after connect must not take the server's handshake with it).
    if (this.#dataArrived && !this.#reacting && !this.#clientConnected) {
      this.#deliver(pending);
      this.#reacting = true;
      this.#scheduled = true;
      // A microtask queued now runs after the reactions already queued; the tick it queues
      // runs once every microtask (however deep the application's await chain) has run.
      queueMicrotask(this.#afterReactions);
      return;
    }
    this.#reacting = false;
    let sent = 0;
    for (let t = this.quic.pollTransmit(now); t !== undefined; t = this.quic.pollTransmit(now)) {
      this.#sender.send(t.data, t.path);
      if (++sent >= MAX_SENDS_PER_DRAIN) {
        this.#scheduleImmediate();
        break;
      }
    }
    this.#sender.flush?.();
    const delivered = this.#deliver(pending);
    now = this.clock.now();
    this.#arm(now, sent > 0 || delivered > 0);
  }

  readonly #afterReactions = (): void => {
    process.nextTick(this.#reactedDrain);
  };

  readonly #reactedDrain = (): void => {
    this.#scheduled = false;
    this.drain();
  };

  /**
   * Take new connections and the events of connections with a listener, without delivering
   * them yet; notes whether data arrived and whether a client's handshake completed.
   */
  #collect(): Pending {
    this.#clientConnected = false;
    this.#dataArrived = false;
    let incoming: Connection[] | undefined;
    for (let c = this.quic.pollIncoming(); c !== undefined; c = this.quic.pollIncoming()) (incoming ??= []).push(c);
    let events: [Connection, ConnectionEvent][] | undefined;
    for (const c of this.#listeners.keys()) {
      for (let e = c.pollEvent(); e !== undefined; e = c.pollEvent()) {
        if (e.type === 'connected' && c.side === 'client') this.#clientConnected = true;
        else if (e.type === 'stream-readable' || e.type === 'stream-opened' || e.type === 'datagram') this.#dataArrived = true;
        (events ??= []).push([c, e]);
      }
    }
    return { incoming, events };
  }

  /**
   * Hand over what {@link #collect} took, then any event raised since (a new connection's
   * listener exists only once it was handed over); returns how many.
   */
  #deliver(pending: Pending): number {
    let delivered = 0;
    for (const c of pending.incoming ?? []) {
      delivered++;
      this.#onIncoming?.(c);
    }
    for (const [c, e] of pending.events ?? []) {
      delivered++;
      this.#listeners.get(c)?.(e);
    }
    for (const c of [...this.#listeners.keys()]) {
      const listener = this.#listeners.get(c)!;
      for (let e = c.pollEvent(); e !== undefined; e = c.pollEvent()) {
        delivered++;
        listener(e);
      }
      if (c.isClosed) this.#listeners.delete(c);
    }
    return delivered;
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
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        this.#timerAt = Infinity;
        this.#tickPasses = 0;
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
      this.#tickPasses = 0;
      this.drain();
    }, ms);
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
