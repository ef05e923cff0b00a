/**
 * The seats where pairing (issue 13), file transfer (issue 14) and discovery (issue 15) plug
 * into the device service. A module is a factory the service calls with a
 * {@link ModuleContext} before it starts (so its protocols are registered before the
 * endpoint accepts anything); the service then routes `Core.networking.startPairingAsInitiator`,
 * `startPairingAsJoiner` and `shareWithDevice` to it, and re-emits the progress the module
 * reports as typed events. Until a module is installed, those methods fail with
 * `ERR_PAIRING_UNAVAILABLE` / `ERR_TRANSFER_UNAVAILABLE`.
 *
 * @module
 */
import type { Connection } from '../endpoint/connection.ts';
import type { Endpoint } from '../endpoint/endpoint.ts';
import type { EndpointAddr } from '../identity/endpoint-addr.ts';
import type { PublicKey } from '../identity/keys.ts';
import type { NodeTlsOptions } from '../relay/client/node-transport.ts';
import { SdnetError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { DeviceRegistryView } from './device-registry-view.ts';
import type { DeviceSnapshot } from './device-registry.ts';
import type { DeviceInfo, NetworkIdentity } from './identity.ts';
import type { DeviceProtocol } from './protocol-registry.ts';

/** A seat has no module in this build. */
export class ModuleUnavailableError extends SdnetError {
  constructor(code: 'ERR_PAIRING_UNAVAILABLE' | 'ERR_TRANSFER_UNAVAILABLE', message: string) {
    super(code, message);
    this.name = 'ModuleUnavailableError';
  }
}

/** Progress of a pairing, as the pairing module reports it (`pairing-progress` events). */
export interface PairingProgress {
  /** The pairing session (one per code). */
  readonly sessionId: string;
  /** `initiator` / `joiner` of a code; `voucher` / `vouchee` / `target` of an introduction. */
  readonly role: 'initiator' | 'joiner' | 'voucher' | 'vouchee' | 'target';
  /** `code-generated`, `peer-found`, `key-confirmed`, `paired`, `failed`, `cancelled`, `expired`, … */
  readonly stage: string;
  /** The peer, once known. */
  readonly peer?: { readonly endpointId: string; readonly name?: string };
  /** Why it failed (a stable code such as `ERR_PAIRING_WRONG_CODE`). */
  readonly error?: { readonly code: string; readonly message: string };
  /** More about the stage (e.g. `attemptsLeft`, `expiresAt`). */
  readonly [extra: string]: unknown;
}

/** Progress of a transfer, as the transfer module reports it (`transfer-progress` events). */
export interface TransferProgress {
  readonly transferId: string;
  readonly direction: 'send' | 'receive';
  /** The other device. */
  readonly peer: { readonly endpointId: string; readonly name?: string };
  /** `offered`, `accepted`, `hashing`, `transferring`, `paused`, `verifying`, `completed`, `failed`, `cancelled`, … */
  readonly stage: string;
  readonly bytesDone?: number;
  readonly bytesTotal?: number;
  readonly files?: number;
  readonly error?: { readonly code: string; readonly message: string };
  readonly [extra: string]: unknown;
}

/** What the service offers a module. */
export interface ModuleContext {
  readonly identity: NetworkIdentity;
  /** The endpoint (bound, not yet accepting while modules are set up). */
  readonly endpoint: Endpoint;
  /** Read-only view of the registry (snapshots, link keys, events). */
  readonly registry: DeviceRegistryView;
  /** Where received files go (`sdnet up --downloads`, default `<data>/downloads`). */
  readonly downloadsDir: string;
  readonly dataDir: string;
  /** The relays the service was configured with (pairing registers its rendezvous there). */
  readonly relays: readonly string[];
  /** TLS options for `https` relays. */
  readonly relayTls?: NodeTlsOptions;
  readonly log: Logger;
  /**
   * The connection to a paired device on `alpn`: the live one (either side's), or a new
   * dial. One per (device, ALPN).
   */
  connect(device: PublicKey | string, alpn: string, options?: { signal?: AbortSignal }): Promise<Connection>;
  /** Dial any endpoint (e.g. a pairing peer that is not paired yet); not tracked. */
  dial(addr: EndpointAddr, alpn: string, options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Connection>;
  /** Registry changes, applied in order by the event loop (its single writer). */
  readonly commands: RegistryCommands;
  /** Report pairing progress (emitted as `pairing-progress`). */
  pairingProgress(progress: PairingProgress): void;
  /** Report transfer progress (emitted as `transfer-progress`). */
  transferProgress(progress: TransferProgress): void;
}

/** Registry mutations a module may ask for; each resolves once applied and persisted. */
export interface RegistryCommands {
  startPairing(id: PublicKey, addr?: EndpointAddr): Promise<DeviceSnapshot>;
  completePairing(options: { id: PublicKey; info: DeviceInfo; linkKey: Uint8Array; addr?: EndpointAddr }): Promise<DeviceSnapshot>;
  failPairing(id: PublicKey): Promise<void>;
  /** A device was heard (LAN, lookup): `discovered`, or an address refresh for known ones. */
  discovered(addr: EndpointAddr, info?: DeviceInfo): Promise<DeviceSnapshot>;
  /** A discovered device went silent. */
  expire(id: PublicKey): Promise<void>;
}

/** What `startPairingAsInitiator` returns: the code to show and the outcome to wait for. */
export interface PairingInvite {
  readonly sessionId: string;
  /** The 12 words. */
  readonly code: string;
  readonly expiresAt: number;
  /** The QR payload (adds the initiator's id and relay). */
  readonly qr?: string;
  /** Resolves with the paired device, rejects on expiry, burn, or cancel. */
  readonly paired: Promise<DeviceSnapshot>;
  cancel(): void;
}

/** A pairing session as `pair.status` shows it (no secrets). */
export interface PairingSessionStatus {
  readonly sessionId: string;
  readonly role: 'initiator' | 'joiner';
  /** `waiting` (a code is shown), `searching`, `exchanging`, `paired`, `failed`, `expired`, `burnt`, `cancelled`. */
  readonly state: string;
  /** R, the public part of the code (8 hex). */
  readonly rendezvousId: string;
  readonly createdAt: number;
  readonly expiresAt?: number;
  /** Wrong tries left before the code burns (initiator). */
  readonly attemptsLeft?: number;
  readonly peer?: { readonly endpointId: string; readonly name?: string };
  readonly error?: { readonly code: string; readonly message: string };
}

/** How one introduction (vouch) ended. */
export interface VouchResult {
  /** The device the vouchee was introduced to. */
  readonly target: { readonly endpointId: string; readonly name?: string };
  readonly accepted: boolean;
  readonly error?: { readonly code: string; readonly message: string };
}

/** The pairing seat. */
export interface PairingModule {
  /** Protocols to register (the pairing ALPN, with `allowUnpaired: true`). */
  readonly protocols?: readonly DeviceProtocol[];
  startAsInitiator(options?: { signal?: AbortSignal; [k: string]: unknown }): Promise<PairingInvite>;
  startAsJoiner(code: string, options?: { signal?: AbortSignal; nodeId?: string; [k: string]: unknown }): Promise<DeviceSnapshot>;
  /** The pairing sessions, current and recently finished (`pair.status`). */
  status?(): PairingSessionStatus[];
  /** Cancel a session (its code is withdrawn everywhere); false if there is none. */
  cancel?(sessionId: string): boolean;
  /** Introduce `vouchee` to each of `targets` (all paired with us). */
  vouch?(vouchee: DeviceSnapshot, targets: readonly DeviceSnapshot[], options?: { signal?: AbortSignal }): Promise<VouchResult[]>;
  /** Accept or refuse an introduction waiting for confirmation; false if there is none. */
  confirmVouch?(introductionId: string, accept: boolean): boolean;
  /** Started with the service (after the endpoint accepts), stopped before it closes. */
  start?(): Promise<void> | void;
  shutdown?(): Promise<void> | void;
}

/** What `shareWithDevice` resolves with. */
export interface TransferResult {
  readonly transferId: string;
  readonly files: number;
  readonly bytes: number;
}

/** The file-transfer seat. */
export interface TransferModule {
  readonly protocols?: readonly DeviceProtocol[];
  share(device: DeviceSnapshot, paths: readonly string[], options?: { signal?: AbortSignal; [k: string]: unknown }): Promise<TransferResult>;
  /** Transfers in and out (`sdnet transfers`). */
  list?(): unknown[];
  /** Pause, resume, cancel a transfer by id (or a unique prefix). */
  pause?(id: string): unknown;
  resume?(id: string): unknown;
  cancel?(id: string): Promise<unknown>;
  start?(): Promise<void> | void;
  shutdown?(): Promise<void> | void;
}

/** Any other module (discovery): protocols and a lifecycle. */
export interface ServiceModule {
  readonly protocols?: readonly DeviceProtocol[];
  start?(): Promise<void> | void;
  shutdown?(): Promise<void> | void;
}

/** Factories the service calls with its context, before it starts. */
export interface ModuleFactories {
  pairing?: (ctx: ModuleContext) => PairingModule;
  transfer?: (ctx: ModuleContext) => TransferModule;
  /** Discovery and anything else. */
  others?: readonly ((ctx: ModuleContext) => ServiceModule)[];
}
