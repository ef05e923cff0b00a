/**
 * File transfer (`sdnet/xfer/1`): end-to-end encrypted per chunk, verified per chunk,
 * resumable after a crash (issue 14; pairing-transfer.md part B).
 *
 * @module
 */
export { TransferService, transferModule, type OfferInfo, type ShareOptions, type TransferInfo, type TransferModuleOptions } from './transfer.ts';
export { TransferError, type TransferErrorCode } from './errors.ts';
export { validateRelativePath, validateManifestPaths } from './paths.ts';
export * from './limits.ts';
export { type Manifest, type ManifestEntry, type ControlMessage } from './wire.ts';
