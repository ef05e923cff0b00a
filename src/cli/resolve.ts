/**
 * `sdnet resolve <EndpointId>` (shared/docs/cli.md): look the id up through pkarr at the
 * relays (`--relay URL`, else `$SDNET_RELAY`; sdnet-relay serves `/pkarr`), extra pkarr
 * relays (`--pkarr URL`), and mDNS on the LAN, in parallel; print the `EndpointAddr` as JSON.
 * Exit 0 found, 1 not found, 2 bad input.
 *
 * @module
 */
import { PkarrLookup, resolveWith, type AddressLookup } from '../discovery/lookup.ts';
import { pkarrUrlOfRelay } from '../discovery/pkarr-client.ts';
import { parseKeyAnyForm } from '../discovery/pkarr.ts';
import { MdnsDiscovery } from '../discovery/mdns.ts';
import { SecretKey, type PublicKey } from '../identity/keys.ts';
import { resolveRelays } from './data-dir.ts';
import { UsageError, type CliIo } from './io.ts';
import { parseCommandArgs } from './help.ts';

const USAGE = 'usage: sdnet resolve <EndpointId> [--relay URL]... [--pkarr URL]... [--no-mdns] [--timeout MS] [--json]';

export async function resolveCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs('resolve', {
    args,
    options: { relay: { type: 'string', multiple: true }, pkarr: { type: 'string', multiple: true }, 'no-mdns': { type: 'boolean' }, timeout: { type: 'string' }, json: { type: 'boolean' }, data: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new UsageError(USAGE);
  let id: PublicKey;
  try {
    id = parseKeyAnyForm(positionals[0]!.trim());
  } catch (err) {
    throw new UsageError(`not an EndpointId: ${(err as Error).message}`);
  }
  const timeoutMs = values.timeout === undefined ? 5_000 : Number(values.timeout);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout is a positive number of milliseconds');
  let pkarr: string[];
  try {
    pkarr = [...resolveRelays(values.relay, io.env).map(pkarrUrlOfRelay), ...(values.pkarr ?? []).map((u) => new URL(u).toString())];
  } catch (err) {
    throw new UsageError(`not a URL: ${(err as Error).message}`);
  }
  const lookups: AddressLookup[] = [];
  if (pkarr.length > 0) lookups.push(new PkarrLookup({ relays: pkarr }));
  if (values['no-mdns'] !== true) {
    // Only listening and asking: no ports, so nothing of ours is announced.
    const mdns = await MdnsDiscovery.start({ id: SecretKey.generate().public(), ports: () => ({}) }).catch(() => undefined);
    if (mdns) lookups.push(mdns);
  }
  try {
    const addr = await resolveWith(lookups, id, { signal: io.signal, timeoutMs });
    if (addr === undefined) {
      io.stderr(`sdnet resolve: ${id.fmtShort()} not found (${lookups.map((l) => l.name).join(', ') || 'no lookups: give --relay URL'})\n`);
      return 1;
    }
    io.stdout(`${JSON.stringify(addr.toJSON())}\n`);
    return 0;
  } finally {
    for (const l of lookups) await l.close?.();
  }
}
