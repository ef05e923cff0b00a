/**
 * Where a device lives (shared/docs/cli.md): `--data DIR`, else `$SDNET_HOME`, else
 * `$XDG_DATA_HOME/sdnet`, else `~/.local/share/sdnet`. Relays: `--relay URL` (repeatable),
 * else `$SDNET_RELAY` (comma-separated).
 *
 * @module
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag !== undefined && flag !== '') return resolve(flag);
  if (env.SDNET_HOME) return resolve(env.SDNET_HOME);
  if (env.XDG_DATA_HOME) return resolve(env.XDG_DATA_HOME, 'sdnet');
  return join(homedir(), '.local', 'share', 'sdnet');
}

export function resolveRelays(flags: readonly string[] | undefined, env: NodeJS.ProcessEnv): string[] {
  if (flags !== undefined && flags.length > 0) return [...flags];
  return (env.SDNET_RELAY ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The control socket of a data dir. */
export function controlSocketPath(dataDir: string): string {
  return join(dataDir, 'sdnet.sock');
}
