/**
 * The relay protocol of iroh 1.0 without I/O (`shared/docs/iroh-wire.md` §1): frame codec,
 * handshake, version negotiation, upgrade validation, batches, and the per-connection state
 * machines of both sides. Shared by `src/relay/client` and `relay-server/`.
 *
 * @module
 */
export * from './limits.ts';
export * from './errors.ts';
export * from './version.ts';
export * from './frames.ts';
export * from './batch.ts';
export * from './handshake.ts';
export * from './key-cache.ts';
export * from './ping-tracker.ts';
export * from './upgrade.ts';
export * from './client-connection.ts';
export * from './server-connection.ts';
