/**
 * The device layer: identity, device registry, protocol registry, and the seats for pairing,
 * transfer and discovery (see README.md in this folder).
 *
 * @module
 */
export { NetworkIdentity, IdentityError, DEVICE_KINDS, isUuidV4, parseDeviceInfo, validateDeviceName, type DeviceInfo, type DeviceKind } from './identity.ts';
export {
  DEVICE_STATES,
  DEVICE_TRANSITIONS,
  DeviceRegistry,
  DeviceRegistryError,
  LINK_KEY_LENGTH,
  PAIRED_STATES,
  nextState,
  type ConnectionInfo,
  type DeviceEvent,
  type DeviceRegistryEvents,
  type DeviceSnapshot,
  type DeviceState,
  type DeviceStateChange,
  type RegistryProblem,
} from './device-registry.ts';
export type { DeviceRegistryView } from './device-registry-view.ts';
export { DEFAULT_PROTOCOL_LIMITS, ProtocolRegistry, type ConnectionContext, type ConnectionSink, type DeviceProtocol, type ProtocolLimits, type RegisteredProtocol } from './protocol-registry.ts';
export {
  ModuleUnavailableError,
  type ModuleContext,
  type ModuleFactories,
  type PairingInvite,
  type PairingModule,
  type PairingProgress,
  type PairingSessionStatus,
  type RegistryCommands,
  type ServiceModule,
  type TransferModule,
  type TransferProgress,
  type TransferResult,
  type VouchResult,
} from './modules.ts';
export { NetworkingService, type NetworkingEvents, type NetworkingOptions, type NetworkingStatus, type RequestHandler } from './networking-service.ts';
export { Core, type CoreOptions } from './core.ts';
export { DEFAULT_TIMING, DeviceUnreachableError, NetworkingEventLoop, compareIds, settleDuplicate, type EventLoopDeps, type ServiceTiming } from './event-loop.ts';
export { DataDirLock, ServiceLockedError } from './lock.ts';
