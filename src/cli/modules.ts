/**
 * The modules the CLI's device service runs with (`sdnet up` and the in-process fallback of
 * the other commands): pairing, and whatever later issues add.
 *
 * @module
 */
import type { ModuleFactories } from '../service/modules.ts';
import { pairingModule } from '../protocols/pairing/module.ts';
import { LanDiscovery } from '../discovery/module.ts';

export interface CliModuleOptions {
  /** Accept introductions (vouches) from paired devices without asking. */
  autoAcceptVouches?: boolean;
  /** LAN discovery (mDNS); default on. `SDNET_MDNS=0` in the environment turns it off. */
  mdns?: boolean;
  /** mDNS port (default 5353; `SDNET_MDNS_PORT`). */
  mdnsPort?: number;
}

export function cliModules(options: CliModuleOptions = {}): ModuleFactories {
  const mdnsOn = options.mdns ?? process.env.SDNET_MDNS !== '0';
  const port = options.mdnsPort ?? (process.env.SDNET_MDNS_PORT ? Number(process.env.SDNET_MDNS_PORT) : undefined);
  const lan = mdnsOn ? new LanDiscovery(port !== undefined && Number.isInteger(port) ? { port } : {}) : undefined;
  return {
    pairing: pairingModule({ autoAcceptVouches: options.autoAcceptVouches === true, ...(lan ? { discovery: [lan.pairing] } : {}) }),
    ...(lan ? { others: [lan.module] } : {}),
  };
}
