/**
 * Address lookups: the ways an endpoint finds another by its id alone (iroh's
 * `AddressLookup`), and how several are asked at once.
 *
 * - {@link PkarrLookup}: publishes our signed `_iroh` record to pkarr relays (by default the
 *   `/pkarr` endpoint of each of our relays), republished before it expires and at once when
 *   it changes, and resolves ids there.
 * - mDNS (mdns.ts) on the LAN.
 *
 * {@link resolveWith} asks every lookup in parallel under one deadline; once one has an
 * answer the others get a short grace, and the addresses found are merged.
 *
 * @module
 */
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import type { PublicKey, SecretKey } from '../identity/keys.ts';
import type { NodeTlsOptions } from '../relay/client/node-transport.ts';
import { PKARR_REPUBLISH_MS } from './limits.ts';
import { encodeInfoDns, infoToAddr, infoTxtStrings, packetInfo, pkarrTimestampNow, signPacket, type EndpointInfo } from './pkarr.ts';
import { publishPacket, resolvePacket } from './pkarr-client.ts';

export { resolveWith, type AddressLookup } from './address-lookup.ts';
import type { AddressLookup } from './address-lookup.ts';

export interface PkarrLookupOptions {
  /** Pkarr relay URLs (`https://host/pkarr`). */
  readonly relays: readonly string[];
  /** Our key: with it, {@link PkarrLookup.publish} publishes; without, it only resolves. */
  readonly secretKey?: SecretKey;
  readonly tls?: NodeTlsOptions;
  /** Republish this often without a change (ms, default 5 min; records live 30 s TTL at resolvers, hours at the relay). */
  readonly republishMs?: number;
  /** Told about publish failures (they are retried at the next republish). */
  readonly onError?: (relay: string, err: unknown) => void;
}

/** Retry a failed publish after this long (ms). */
const PUBLISH_RETRY_MS = 5_000;

/** Publish to and resolve at pkarr relays (iroh's `PkarrPublisher` + `PkarrResolver`). */
export class PkarrLookup implements AddressLookup {
  readonly name = 'pkarr';
  readonly #o: PkarrLookupOptions;
  #info: EndpointInfo | undefined;
  #published = '';
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #inflight: Promise<void> | undefined;

  constructor(options: PkarrLookupOptions) {
    this.#o = options;
  }

  get relays(): readonly string[] {
    return this.#o.relays;
  }

  async resolve(id: PublicKey, signal: AbortSignal): Promise<EndpointAddr | undefined> {
    const results = await Promise.allSettled(this.#o.relays.map((r) => resolvePacket(r, id, { signal, ...(this.#o.tls ? { tls: this.#o.tls } : {}) })));
    let newest: Awaited<ReturnType<typeof resolvePacket>>;
    for (const r of results) if (r.status === 'fulfilled' && r.value && (newest === undefined || r.value.timestampUs > newest.timestampUs)) newest = r.value;
    if (newest === undefined) return undefined;
    const addr = infoToAddr(packetInfo(newest));
    return addr.isEmpty ? undefined : addr;
  }

  /** Publish `info` now if it changed; keep republishing it. */
  publish(info: EndpointInfo): void {
    if (this.#closed || this.#o.secretKey === undefined) return;
    this.#info = info;
    const text = infoTxtStrings(info).join('\n');
    if (text === this.#published) return;
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#run(), ms);
    this.#timer.unref?.();
  }

  /** Resolves once the current info is published (or failed) at every relay; for tests. */
  async flushed(): Promise<void> {
    while (this.#inflight) await this.#inflight;
  }

  async #run(): Promise<void> {
    const info = this.#info;
    const key = this.#o.secretKey;
    if (info === undefined || key === undefined || this.#closed) return;
    const text = infoTxtStrings(info).join('\n');
    const body = signPacket(key, encodeInfoDns(info), pkarrTimestampNow());
    const work = Promise.allSettled(this.#o.relays.map((r) => publishPacket(r, info.id, body, this.#o.tls ? { tls: this.#o.tls } : {}))).then((results) => {
      let failed = false;
      results.forEach((r, i) => {
        if (r.status === 'rejected') {
          failed = true;
          this.#o.onError?.(this.#o.relays[i]!, r.reason);
        }
      });
      if (this.#info === info) this.#published = failed ? '' : text;
      // A change meanwhile is published at once; otherwise republish before expiry.
      if (this.#info !== info) this.#schedule(0);
      else this.#schedule(failed ? PUBLISH_RETRY_MS : (this.#o.republishMs ?? PKARR_REPUBLISH_MS));
    });
    this.#inflight = work;
    await work;
    if (this.#inflight === work) this.#inflight = undefined;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
