/**
 * Helpers for pairing tests: devices (Core) with the pairing module on loopback, codes that
 * share R with a given code but not S (a "wrong secret"), and a collector of progress events.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Core, type CoreOptions } from '../../src/service/index.ts';
import type { PairingProgress } from '../../src/service/modules.ts';
import { PairingCode } from '../../src/protocols/pairing/code.ts';
import { pairingModule, type PairingOptions } from '../../src/protocols/pairing/module.ts';
import { concatBytes } from '../../src/util/bytes.ts';

export const FAST_TIMING = { healthIntervalMs: 300, healthTimeoutMs: 600, healthMaxMisses: 2, reconnectMinMs: 50, reconnectMaxMs: 500, dialTimeoutMs: 3000 };

/** Cleanups run in reverse order by `cleanupAll`. */
export class Scope {
  readonly #cleanups: Array<() => Promise<unknown> | unknown> = [];

  add(fn: () => Promise<unknown> | unknown): void {
    this.#cleanups.push(fn);
  }

  async tempDir(prefix = 'sdnet-pair-'): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), prefix));
    this.add(() => rm(d, { recursive: true, force: true }));
    return d;
  }

  async device(name: string, options: Partial<CoreOptions> & { pairing?: PairingOptions } = {}): Promise<Core> {
    const dir = join(await this.tempDir(), name);
    const { pairing, ...rest } = options;
    const core = await Core.init({ dataDir: dir, name, bind: ['127.0.0.1:0'], timing: FAST_TIMING, modules: { pairing: pairingModule(pairing) }, ...rest });
    this.add(() => core.shutdown());
    return core;
  }

  async cleanupAll(): Promise<void> {
    for (const c of this.#cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // keep cleaning
      }
    }
  }
}

/** A valid code with the same R as `words` and another S. */
export function sameRendezvousOtherSecret(words: string): string {
  const r = PairingCode.parse(words).rendezvous;
  for (;;) {
    const other = PairingCode.fromEntropy(concatBytes(r, crypto.getRandomValues(new Uint8Array(12))));
    if (other.words !== words) return other.words;
  }
}

/** Replace the words of a QR payload. */
export function withWords(qr: string, words: string): string {
  return JSON.stringify({ ...(JSON.parse(qr) as object), words });
}

/** Every pairing-progress event of a device, as `role:stage`. */
export function collectProgress(core: Core): PairingProgress[] {
  const seen: PairingProgress[] = [];
  core.networking.on('pairing-progress', (p) => seen.push(p));
  return seen;
}
