/**
 * Pairing with a 12-word code: CPace bound to the TLS channel (`sdnet/pair/1`), the relays'
 * rendezvous client, the LAN discovery seat, and vouching.
 *
 * @module
 */
export { pairingModule, PairingManager, PAIR_ALPN, type PairingOptions } from './module.ts';
export { PairingCode, parsePairingInput, qrPayload, type PairingTicket } from './code.ts';
export { PairingError, PAIRING_ERROR_TEXT, isPairingErrorCode, type PairingErrorCode } from './errors.ts';
export { pairingUserData, type PairingDiscovery } from './discovery.ts';
export { lookupRendezvous, registerRendezvous, withdrawRendezvous, RendezvousError, type RendezvousClientOptions } from './rendezvous.ts';
export { RENDEZVOUS_MAX_TTL_MS, RENDEZVOUS_PATH_PREFIX, type RendezvousRecord } from './rendezvous-wire.ts';
export { CpaceParty, CpaceError, type CpaceInputs, type CpaceResult } from './cpace.ts';
