/**
 * `Core`: the application's root object, as in Spacedrive (`Core::new` → services →
 * networking). It owns one {@link NetworkingService}, started before `init` resolves, and
 * stops it with {@link Core.shutdown}.
 *
 * ```ts
 * const core = await Core.init({ dataDir, relays: ['https://relay.example/'] });
 * core.networking.on('message-received', ({ from, payload }) => console.log(from.name, payload));
 * await core.networking.sendMessage('laptop', 'hello');
 * await core.shutdown();
 * ```
 *
 * @module
 */
import type { PublicKey } from '../identity/keys.ts';
import type { TransferResult } from './modules.ts';
import { NetworkingService, type NetworkingOptions } from './networking-service.ts';

export type CoreOptions = NetworkingOptions;

export class Core {
  readonly networking: NetworkingService;

  private constructor(networking: NetworkingService) {
    this.networking = networking;
  }

  /** Load (or create) the device in `options.dataDir` and start its networking. */
  static async init(options: CoreOptions): Promise<Core> {
    const networking = await NetworkingService.create(options);
    try {
      await networking.start();
    } catch (err) {
      await networking.shutdown().catch(() => undefined);
      throw err;
    }
    return new Core(networking);
  }

  /**
   * Send files and directories to a paired device (the transfer module; `device` as the
   * CLI's `<device>`). Resolves once the receiver verified everything.
   *
   * @throws {ModuleUnavailableError} `ERR_TRANSFER_UNAVAILABLE` without a transfer module
   */
  shareWithDevice(device: string | PublicKey, paths: readonly string[], options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<TransferResult> {
    return this.networking.shareWithDevice(device, paths, options);
  }

  /** Stop the networking (Goodbye to peers, registry flushed, lock released). */
  async shutdown(): Promise<void> {
    await this.networking.shutdown();
  }
}
