/**
 * LAN discovery as a device-service module: mDNS attached to the service's endpoint.
 *
 * - Devices heard enter the registry as `discovered` (nearby) and expire when silent; a
 *   paired device heard this way gets its address refreshed and is dialled at once (unless a
 *   connection is live) — on a LAN with no relay that is how paired devices find each other.
 * - Pairing's LAN seat ({@link LanDiscovery.pairing}): while a code is live, our mDNS
 *   `user-data` is `pair:<R>`; it is cleared at once when the pairing ends (Spacedrive never
 *   clears it). A joiner hears the initiator by that user-data; its lookup ends with its
 *   signal or when mDNS closes, so a join never waits on it.
 *
 * @module
 */
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import type { RelayUrl } from '../identity/relay-url.ts';
import type { SocketAddr } from '../identity/socket-addr.ts';
import type { PublicKey } from '../identity/keys.ts';
import { MESSAGING_ALPN } from '../protocols/messaging/messages.ts';
import { pairingUserData, type PairingDiscovery } from '../protocols/pairing/discovery.ts';
import type { ModuleContext, ServiceModule } from '../service/modules.ts';
import { attachMdns } from './attach.ts';
import type { MdnsDiscovery } from './mdns.ts';

/** A `discovered` device's registry entry is refreshed at most this often (ms). */
const REFRESH_MS = 5_000;
/** A paired device heard on the LAN is dialled at most this often (ms). */
const REDIAL_MS = 5_000;

export interface LanDiscoveryOptions {
  /** mDNS port (default 5353; tests may use another). */
  readonly port?: number;
  /** Forget a silent device after this long (ms, default 30 s). */
  readonly expiryMs?: number;
}

export class LanDiscovery {
  readonly #o: LanDiscoveryOptions;
  #ctx: ModuleContext | undefined;
  #mdns: MdnsDiscovery | undefined;
  readonly #refreshed = new Map<string, number>();
  readonly #dialled = new Map<string, number>();
  /** Rendezvous ids advertised now, newest last (user-data carries the newest). */
  readonly #advertised: string[] = [];

  constructor(options: LanDiscoveryOptions = {}) {
    this.#o = options;
  }

  /** The mDNS instance once started (tests, status). */
  get mdns(): MdnsDiscovery | undefined {
    return this.#mdns;
  }

  /** The factory for `ModuleFactories.others`. */
  readonly module = (ctx: ModuleContext): ServiceModule => {
    this.#ctx = ctx;
    return {
      start: async () => {
        const mdns = await attachMdns(ctx.endpoint, { ...this.#o, onError: (err) => ctx.log.debug('mdns', { error: String(err) }) });
        if (mdns === undefined) {
          ctx.log.warn('mdns: no socket on port 5353; LAN discovery is off');
          return;
        }
        this.#mdns = mdns;
        mdns.on('peer', (p) => this.#onPeer(p.id, p.first, { id: p.id, addrs: p.addrs, relay: p.relay }));
        mdns.on('expired', ({ id }) => {
          this.#refreshed.delete(id.toString());
          void ctx.commands.expire(id).catch(() => undefined);
        });
      },
      shutdown: () => {
        this.#mdns?.close();
        this.#mdns = undefined;
      },
    };
  };

  #onPeer(id: PublicKey, first: boolean, p: { id: PublicKey; addrs: readonly SocketAddr[]; relay: RelayUrl | undefined }): void {
    const ctx = this.#ctx;
    if (ctx === undefined) return;
    const key = id.toString();
    const now = Date.now();
    if (first || now - (this.#refreshed.get(key) ?? 0) >= REFRESH_MS) {
      this.#refreshed.set(key, now);
      const addr = EndpointAddr.from({ id, directAddresses: [...p.addrs], relayUrls: p.relay ? [p.relay] : [] });
      void ctx.commands
        .discovered(addr)
        .then(() => {
          if (!ctx.registry.isPaired(id)) return;
          const state = ctx.registry.state(id);
          if (state === 'connected' || now - (this.#dialled.get(key) ?? 0) < REDIAL_MS) return;
          this.#dialled.set(key, now);
          // A paired device on the LAN: dial it directly.
          return ctx.connect(id, MESSAGING_ALPN).then(
            () => undefined,
            (err: unknown) => ctx.log.debug('mdns: dial of a paired device failed', { id: id.fmtShort(), error: String(err) }),
          );
        })
        .catch((err: unknown) => ctx.log.debug('mdns: registry update failed', { error: String(err) }));
    }
  }

  /** Pairing's LAN seat. */
  readonly pairing: PairingDiscovery = {
    name: 'mdns',
    advertise: (rendezvousId) => {
      this.#advertised.push(rendezvousId);
      this.#ctx?.endpoint.setUserData(pairingUserData(rendezvousId));
      return () => {
        const i = this.#advertised.indexOf(rendezvousId);
        if (i >= 0) this.#advertised.splice(i, 1);
        const newest = this.#advertised.at(-1);
        this.#ctx?.endpoint.setUserData(newest === undefined ? undefined : pairingUserData(newest));
      };
    },
    lookup: (rendezvousId, signal) => {
      const mdns = this.#mdns;
      if (mdns === undefined) return (async function* () {})();
      return mdns.withUserData(pairingUserData(rendezvousId), signal);
    },
  };
}
