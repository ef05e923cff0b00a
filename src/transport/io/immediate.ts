/**
 * "Run this after the current task, before any timer": Node's `setImmediate` where the global
 * scope has it, otherwise a `MessageChannel` queue (browsers). Not `setTimeout(0)`: browsers
 * clamp nested zero timeouts to 4 ms, which would cap a driver that reschedules itself after
 * every pass at ~250 passes a second.
 *
 * @module
 */

/** A pending immediate, for {@link cancelImmediate} (Node's own handle where it has one). */
export type ImmediateHandle = object;

type Native = { setImmediate?: (fn: () => void) => object; clearImmediate?: (h: object) => void };
const native = globalThis as unknown as Native;

let queue: { fn: (() => void) | undefined }[] = [];
let channel: MessageChannel | undefined;

function runQueue(): void {
  const batch = queue;
  queue = [];
  for (const entry of batch) {
    const fn = entry.fn;
    entry.fn = undefined;
    if (fn === undefined) continue;
    try {
      fn();
    } catch (err) {
      // Like an exception in any other task: reported, and the rest of the queue still runs.
      setTimeout(() => {
        throw err;
      }, 0);
    }
  }
}

/** Run `fn` once the current task and its microtasks are done. */
export function scheduleImmediate(fn: () => void): ImmediateHandle {
  if (native.setImmediate !== undefined) return native.setImmediate(fn);
  if (channel === undefined) {
    channel = new MessageChannel();
    channel.port1.onmessage = runQueue;
  }
  const entry = { fn: fn as (() => void) | undefined };
  queue.push(entry);
  if (queue.length === 1) channel.port2.postMessage(null);
  return entry;
}

/** Cancel an immediate that has not run yet. */
export function cancelImmediate(handle: ImmediateHandle): void {
  if (native.clearImmediate !== undefined && native.setImmediate !== undefined) {
    native.clearImmediate(handle);
    return;
  }
  (handle as { fn: unknown }).fn = undefined;
}
