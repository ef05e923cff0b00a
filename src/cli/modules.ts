/**
 * The modules the CLI's device service runs with (`sdnet up` and the in-process fallback of
 * the other commands): pairing, file transfer, and whatever later issues add.
 *
 * @module
 */
import type { ModuleFactories } from '../service/modules.ts';
import { pairingModule } from '../protocols/pairing/module.ts';
import { transferModule } from '../protocols/transfer/transfer.ts';

export interface CliModuleOptions {
  /** Accept introductions (vouches) from paired devices without asking. */
  autoAcceptVouches?: boolean;
  /** Refuse every file offer (default: accept from paired devices). */
  refuseTransfers?: boolean;
}

export function cliModules(options: CliModuleOptions = {}): ModuleFactories {
  return { pairing: pairingModule({ autoAcceptVouches: options.autoAcceptVouches === true }), transfer: transferModule({ policy: options.refuseTransfers === true ? 'refuse' : 'accept' }) };
}
