/**
 * The address-lookup interface (iroh's `AddressLookup`) and {@link resolveWith}, which asks
 * several at once: no platform dependency, so the browser's endpoint takes them too.
 *
 * @module
 */
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import type { PublicKey } from '../identity/keys.ts';
import { SdnetError } from '../util/errors.ts';
import { RESOLVE_DEADLINE_MS } from './limits.ts';
import type { EndpointInfo } from './pkarr.ts';

/** One way of finding an endpoint by id. */
export interface AddressLookup {
  /** For logs (`pkarr`, `mdns`). */
  readonly name: string;
  /** What this lookup knows of `id` (undefined: nothing) — by the time `signal` aborts at the latest. */
  resolve(id: PublicKey, signal: AbortSignal): Promise<EndpointAddr | undefined>;
  /** Our own info changed (relay, addresses, user-data): publish it, if this lookup publishes. */
  publish?(info: EndpointInfo): void;
  close?(): void | Promise<void>;
}

/** After the first lookup answers, the others have this long to add theirs (ms). */
const RESOLVE_GRACE_MS = 150;

/**
 * Ask every lookup for `id` in parallel; resolves with the merged addresses found, or
 * undefined when none answered within `timeoutMs` (default 5 s).
 */
export async function resolveWith(lookups: readonly AddressLookup[], id: PublicKey, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<EndpointAddr | undefined> {
  if (lookups.length === 0) return undefined;
  const ac = new AbortController();
  const onAbort = (): void => ac.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const found: EndpointAddr[] = [];
  let grace: ReturnType<typeof setTimeout> | undefined;
  const deadline = setTimeout(() => ac.abort(new SdnetError('ERR_TIMEOUT', 'resolve deadline')), options.timeoutMs ?? RESOLVE_DEADLINE_MS);
  try {
    await new Promise<void>((resolve) => {
      let pending = lookups.length;
      ac.signal.addEventListener('abort', () => resolve(), { once: true });
      for (const l of lookups) {
        l.resolve(id, ac.signal).then(
          (addr) => {
            if (addr !== undefined && !addr.isEmpty) {
              found.push(addr);
              grace ??= setTimeout(() => resolve(), RESOLVE_GRACE_MS);
            }
          },
          () => undefined,
        ).finally(() => {
          if (--pending === 0) resolve();
        });
      }
    });
  } finally {
    clearTimeout(deadline);
    clearTimeout(grace);
    options.signal?.removeEventListener('abort', onAbort);
    ac.abort();
  }
  if (found.length === 0) return undefined;
  return EndpointAddr.from({ id, relayUrls: found.flatMap((a) => a.relayUrls), directAddresses: found.flatMap((a) => a.directAddresses) });
}
