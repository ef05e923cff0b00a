/**
 * The read-only face of the {@link DeviceRegistry} that everything but the event loop sees.
 *
 * @module
 */
import type { EndpointAddr } from '../identity/endpoint-addr.ts';
import type { PublicKey } from '../identity/keys.ts';
import type { Listener, ListenOptions } from '../util/emitter.ts';
import type { DeviceRegistryEvents, DeviceSnapshot, DeviceState, RegistryProblem } from './device-registry.ts';

export interface DeviceRegistryView {
  devices(): DeviceSnapshot[];
  get(id: PublicKey | string): DeviceSnapshot | undefined;
  state(id: PublicKey | string): DeviceState | 'none';
  isPaired(id: PublicKey | string): boolean;
  /** The link key shared with a paired device (a secret: never log it). */
  linkKey(id: PublicKey | string): Uint8Array | undefined;
  addr(id: PublicKey | string): EndpointAddr | undefined;
  resolve(query: string): DeviceSnapshot;
  /** The EndpointId `query` names (as {@link resolve}). */
  idOf(query: string | PublicKey): PublicKey;
  readonly problems: readonly RegistryProblem[];
  on<K extends keyof DeviceRegistryEvents>(type: K, listener: Listener<DeviceRegistryEvents[K]>, options?: ListenOptions): () => void;
  next<K extends keyof DeviceRegistryEvents>(type: K, options?: ListenOptions & { filter?: (event: DeviceRegistryEvents[K]) => boolean }): Promise<DeviceRegistryEvents[K]>;
}
