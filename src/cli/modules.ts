/**
 * The modules the CLI's device service runs with (`sdnet up` and the in-process fallback of
 * the other commands): pairing, and whatever later issues add.
 *
 * @module
 */
import type { ModuleFactories } from '../service/modules.ts';
import { pairingModule } from '../protocols/pairing/module.ts';

export interface CliModuleOptions {
  /** Accept introductions (vouches) from paired devices without asking. */
  autoAcceptVouches?: boolean;
}

export function cliModules(options: CliModuleOptions = {}): ModuleFactories {
  return { pairing: pairingModule({ autoAcceptVouches: options.autoAcceptVouches === true }) };
}
